// name: threads
// description: Causal threads: chains of strong resid->resid edges across >= 3 consecutive layers whose features promote common tokens more often than chance.
// param: prompt: string = null — prompt text, prompt id or circuit id (default: every circuit)
// param: min_share: float = 0.1 — only edges with |weight| at least this share of their circuit's strongest |weight| (the thread's minimum strength, on one scale for every metric and model)
// param: min_weight: float = 0.0 — only edges with |weight| at least this
// param: top_n: int = 5 — how many of each feature's top promoted tokens count towards a common token
// param: min_layers: int = 3 — shortest thread, in layers (nodes)
// param: limit: int = 50 — rows to return
// example: scd query threads
// example: scd query threads -p min_share=0.05 -p top_n=3
// empty: no thread of >= {min_layers} layers has every edge >= min_share={min_share} of its circuit's strongest and more common promoted tokens than chance: lower -p min_share to see weaker ones
//
// A thread is a path of residual-stream nodes, one per layer (layer L -> L+1 -> ...), every edge at least
// min_share (and min_weight) strong, whose features share at least one token among their top_n promoted tokens
// (`shared`, `matches` = how many). Only maximal threads are listed: none can be extended at either end by a
// qualifying edge to a node whose feature also promotes one of the shared tokens. strength is the thread's weakest
// |weight|, min_share its weakest share.
//
// Chance baseline (`chance`): the expected number of tokens common to the top_n lists of features drawn at random,
// one per layer, from the store's resid features of that layer (those in some circuit) -- shuffled features. For
// a layer range lo..hi it is sum over tokens t of prod over layers l of p_l(t), p_l(t) = the share of layer l's
// features whose top_n list holds t: the exact expectation, so frequently promoted tokens (')' promoted by many
// features) raise it. Only threads with matches > chance are listed.
MATCH (g:Feature {kind: 'resid'})
WHERE EXISTS { MATCH (:Node)-[:OF]->(g) }
WITH g.layer AS layer, collect(g.top_promoted[0..$top_n]) AS lists
WITH layer, size(lists) AS total, lists
UNWIND lists AS list
UNWIND list AS token
WITH layer, total, token, count(*) AS k
WITH collect({layer: layer, token: token, p: toFloat(k) / total}) AS rates, collect(DISTINCT layer) AS layers
UNWIND layers AS lo
UNWIND layers AS hi
WITH rates, lo, hi
WHERE hi - lo + 1 >= $min_layers
UNWIND rates AS r
WITH lo, hi, r
WHERE r.layer >= lo AND r.layer <= hi
WITH lo, hi, r.token AS token, collect(r.p) AS ps
WITH lo, hi, sum(CASE WHEN size(ps) = hi - lo + 1 THEN reduce(x = 1.0, q IN ps | x * q) ELSE 0.0 END) AS expected
WITH collect({lo: lo, hi: hi, expected: expected}) AS chance
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt OR $prompt IS NULL
MATCH (c)-[:HAS]->(a:Node {kind: 'resid'})
MATCH chain = (a)-[:FEEDS*2..30]->(b:Node {kind: 'resid'})
WHERE all(n IN nodes(chain) WHERE n.kind = 'resid')
  AND all(r IN relationships(chain) WHERE abs(r.weight) >= $min_weight AND r.share >= $min_share)
  AND [n IN nodes(chain) | n.layer] = range(a.layer, b.layer)
  AND length(chain) + 1 >= $min_layers
WITH chance, c, p, a, b, chain, [n IN nodes(chain) | n.id] AS ids,
     reduce(m = 1.0e308, r IN relationships(chain) | CASE WHEN abs(r.weight) < m THEN abs(r.weight) ELSE m END) AS strength,
     reduce(m = 1.0e308, r IN relationships(chain) | CASE WHEN r.share < m THEN r.share ELSE m END) AS weakest
UNWIND nodes(chain) AS n
MATCH (n)-[:OF]->(f:Feature)
UNWIND f.top_promoted[0..$top_n] AS token
WITH chance, c, p, a, b, ids, strength, weakest, token, count(DISTINCT n) AS holders
WHERE holders = size(ids)
WITH chance, c, p, a, b, ids, strength, weakest, token
ORDER BY token
WITH chance, c, p, a, b, ids, strength, weakest, collect(token) AS shared
WHERE NOT EXISTS {
        MATCH (fx:Feature)<-[:OF]-(x:Node {kind: 'resid'})-[r:FEEDS]->(a)
        WHERE x.layer = a.layer - 1 AND abs(r.weight) >= $min_weight AND r.share >= $min_share
          AND any(token IN fx.top_promoted[0..$top_n] WHERE token IN shared) }
  AND NOT EXISTS {
        MATCH (b)-[r:FEEDS]->(y:Node {kind: 'resid'})-[:OF]->(fy:Feature)
        WHERE y.layer = b.layer + 1 AND abs(r.weight) >= $min_weight AND r.share >= $min_share
          AND any(token IN fy.top_promoted[0..$top_n] WHERE token IN shared) }
WITH c, p, a, b, ids, strength, weakest, shared,
     [x IN chance WHERE x.lo = a.layer AND x.hi = b.layer | x.expected][0] AS expected
WHERE size(shared) > expected
RETURN c.id AS circuit, p.text AS prompt, a.layer AS first_layer, b.layer AS last_layer, size(ids) AS layers,
       reduce(s = '', id IN ids | s + CASE WHEN s = '' THEN '' ELSE ' -> ' END + replace(id, c.id + '/', '')) AS thread,
       shared, size(shared) AS matches, expected AS chance, strength, weakest AS min_share
ORDER BY layers DESC, strength DESC, circuit, thread
LIMIT $limit
