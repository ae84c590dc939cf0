// LadybugDB dialect of threads (same name, parameters and result): node and edge filters sit inside the
// recursive pattern, and lists are built with list_transform / list_filter / list_min instead of comprehensions
// and reduce()
// (list_product for the chance baseline's product).
MATCH (g:Feature {kind: 'resid'})
WHERE EXISTS { MATCH (:Node)-[:OF]->(g) }
WITH g.layer AS layer, collect(g.top_promoted[0..$top_n]) AS lists
WITH layer, size(lists) AS total, lists
UNWIND lists AS list
UNWIND list AS token
WITH layer, total, token, count(*) AS k
WITH collect({layer: layer, token: token, p: k * 1.0 / total}) AS rates, collect(DISTINCT layer) AS layers
UNWIND layers AS lo
UNWIND layers AS hi
WITH rates, lo, hi
WHERE hi - lo + 1 >= $min_layers
UNWIND rates AS r
WITH lo, hi, r
WHERE r.layer >= lo AND r.layer <= hi
WITH lo, hi, r.token AS token, collect(r.p) AS ps
WITH lo, hi, sum(CASE WHEN size(ps) = hi - lo + 1 THEN list_product(ps) ELSE 0.0 END) AS expected
WITH collect({lo: lo, hi: hi, expected: expected}) AS chance
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt OR $prompt IS NULL
MATCH (c)-[:HAS]->(a:Node {kind: 'resid'})
MATCH chain = (a)-[:FEEDS*2..30 (r, n | WHERE abs(r.weight) >= $min_weight AND r.share >= $min_share AND n.kind = 'resid')]->(b:Node {kind: 'resid'})
WHERE list_transform(nodes(chain), n -> n.layer) = range(a.layer, b.layer)
  AND length(chain) + 1 >= $min_layers
WITH chance, c, p, a, b, chain, list_transform(nodes(chain), n -> n.id) AS ids,
     list_min(list_transform(rels(chain), r -> abs(r.weight))) AS strength,
     list_min(list_transform(rels(chain), r -> r.share)) AS weakest
UNWIND ids AS id
MATCH (n:Node)-[:OF]->(f:Feature)
WHERE n.id = id
UNWIND f.top_promoted[0..$top_n] AS token
WITH chance, c, p, a, b, ids, strength, weakest, token, count(DISTINCT n.id) AS holders
WHERE holders = size(ids)
WITH chance, c, p, a, b, ids, strength, weakest, list_sort(collect(token)) AS shared
WHERE NOT EXISTS {
        MATCH (fx:Feature)<-[:OF]-(x:Node {kind: 'resid'})-[r:FEEDS]->(a)
        WHERE x.layer = a.layer - 1 AND abs(r.weight) >= $min_weight AND r.share >= $min_share
          AND any(token IN fx.top_promoted[0..$top_n] WHERE token IN shared) }
  AND NOT EXISTS {
        MATCH (b)-[r:FEEDS]->(y:Node {kind: 'resid'})-[:OF]->(fy:Feature)
        WHERE y.layer = b.layer + 1 AND abs(r.weight) >= $min_weight AND r.share >= $min_share
          AND any(token IN fy.top_promoted[0..$top_n] WHERE token IN shared) }
WITH c, p, a, b, ids, strength, weakest, shared,
     list_min(list_transform(list_filter(chance, x -> x.lo = a.layer AND x.hi = b.layer), x -> x.expected)) AS expected
WHERE size(shared) > expected
RETURN c.id AS circuit, p.text AS prompt, a.layer AS first_layer, b.layer AS last_layer, size(ids) AS layers,
       list_to_string(' -> ', list_transform(ids, id -> replace(id, c.id + '/', ''))) AS thread, shared,
       size(shared) AS matches, expected AS chance, strength, weakest AS min_share
ORDER BY layers DESC, strength DESC, circuit, thread
LIMIT $limit
