// LadybugDB dialect of threads (same name, parameters and result): node and edge filters sit inside the
// recursive pattern, and lists are built with list_transform / list_min instead of comprehensions and reduce().
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt OR $prompt IS NULL
MATCH (c)-[:HAS]->(a:Node {kind: 'resid'})
MATCH chain = (a)-[:FEEDS*2..30 (r, n | WHERE abs(r.weight) >= $min_weight AND n.kind = 'resid')]->(b:Node {kind: 'resid'})
WHERE list_transform(nodes(chain), n -> n.layer) = range(a.layer, b.layer)
  AND length(chain) + 1 >= $min_layers
WITH c, p, a, b, chain, list_transform(nodes(chain), n -> n.id) AS ids,
     list_min(list_transform(rels(chain), r -> abs(r.weight))) AS strength
UNWIND ids AS id
MATCH (n:Node)-[:OF]->(f:Feature)
WHERE n.id = id
UNWIND f.top_promoted[0..$top_n] AS token
WITH c, p, a, b, ids, strength, token, count(DISTINCT n.id) AS holders
WHERE holders = size(ids)
WITH c, p, a, b, ids, strength, list_sort(collect(token)) AS shared
WHERE NOT EXISTS {
        MATCH (fx:Feature)<-[:OF]-(x:Node {kind: 'resid'})-[r:FEEDS]->(a)
        WHERE x.layer = a.layer - 1 AND abs(r.weight) >= $min_weight
          AND any(token IN fx.top_promoted[0..$top_n] WHERE token IN shared) }
  AND NOT EXISTS {
        MATCH (b)-[r:FEEDS]->(y:Node {kind: 'resid'})-[:OF]->(fy:Feature)
        WHERE y.layer = b.layer + 1 AND abs(r.weight) >= $min_weight
          AND any(token IN fy.top_promoted[0..$top_n] WHERE token IN shared) }
RETURN c.id AS circuit, p.text AS prompt, a.layer AS first_layer, b.layer AS last_layer, size(ids) AS layers,
       list_to_string(' -> ', list_transform(ids, id -> replace(id, c.id + '/', ''))) AS thread, shared, strength
ORDER BY layers DESC, strength DESC, circuit, thread
LIMIT $limit
