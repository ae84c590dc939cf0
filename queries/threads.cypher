// name: threads
// description: Causal threads: chains of strong resid->resid edges across >= 3 consecutive layers whose features promote a common token.
// param: prompt: string = null — prompt text, prompt id or circuit id (default: every circuit)
// param: min_weight: float = 0.0 — only edges with |weight| at least this
// param: top_n: int = 5 — how many of each feature's top promoted tokens count towards a common token
// param: min_layers: int = 3 — shortest thread, in layers (nodes)
// param: limit: int = 50 — rows to return
// example: scd query threads -p min_weight=0.1
//
// A thread is a path of residual-stream nodes, one per layer (layer L -> L+1 -> ...), every edge at least
// min_weight strong, whose features share at least one token among their top_n promoted tokens (`shared`).
// Only maximal threads are listed: none can be extended at either end by a qualifying edge to a node whose
// feature also promotes one of the shared tokens. strength is the thread's weakest |weight|.
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt OR $prompt IS NULL
MATCH (c)-[:HAS]->(a:Node {kind: 'resid'})
MATCH chain = (a)-[:FEEDS*2..30]->(b:Node {kind: 'resid'})
WHERE all(n IN nodes(chain) WHERE n.kind = 'resid')
  AND all(r IN relationships(chain) WHERE abs(r.weight) >= $min_weight)
  AND [n IN nodes(chain) | n.layer] = range(a.layer, b.layer)
  AND length(chain) + 1 >= $min_layers
WITH c, p, a, b, chain, [n IN nodes(chain) | n.id] AS ids,
     reduce(m = 1.0e308, r IN relationships(chain) | CASE WHEN abs(r.weight) < m THEN abs(r.weight) ELSE m END) AS strength
UNWIND nodes(chain) AS n
MATCH (n)-[:OF]->(f:Feature)
UNWIND f.top_promoted[0..$top_n] AS token
WITH c, p, a, b, ids, strength, token, count(DISTINCT n) AS holders
WHERE holders = size(ids)
WITH c, p, a, b, ids, strength, token
ORDER BY token
WITH c, p, a, b, ids, strength, collect(token) AS shared
WHERE NOT EXISTS {
        MATCH (fx:Feature)<-[:OF]-(x:Node {kind: 'resid'})-[r:FEEDS]->(a)
        WHERE x.layer = a.layer - 1 AND abs(r.weight) >= $min_weight
          AND any(token IN fx.top_promoted[0..$top_n] WHERE token IN shared) }
  AND NOT EXISTS {
        MATCH (b)-[r:FEEDS]->(y:Node {kind: 'resid'})-[:OF]->(fy:Feature)
        WHERE y.layer = b.layer + 1 AND abs(r.weight) >= $min_weight
          AND any(token IN fy.top_promoted[0..$top_n] WHERE token IN shared) }
RETURN c.id AS circuit, p.text AS prompt, a.layer AS first_layer, b.layer AS last_layer, size(ids) AS layers,
       reduce(s = '', id IN ids | s + CASE WHEN s = '' THEN '' ELSE ' -> ' END + replace(id, c.id + '/', '')) AS thread,
       shared, strength
ORDER BY layers DESC, strength DESC, circuit, thread
LIMIT $limit
