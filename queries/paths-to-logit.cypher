// name: paths-to-logit
// description: The strongest paths from input tokens and features to the target logit within one prompt's circuit.
// param: prompt: string — prompt text, prompt id or circuit id
// param: min_weight: float = 0.0 — only follow edges with |weight| at least this (raise it on large circuits)
// param: limit: int = 20 — paths to return
// example: scd query paths-to-logit -p prompt="ab (cd [e {fg" -p min_weight=0.05
//
// A path's strength is its weakest link, min |weight| over its edges (a bottleneck: a path is only as strong as
// its weakest edge); product multiplies the signed weights. Paths run from any node with no stronger-than-
// min_weight feeder in the path set, up to 16 hops; circuits are acyclic, so every path is simple.
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt
MATCH (c)-[:HAS]->(t:Node {kind: 'logit'})
MATCH route = (s:Node)-[:FEEDS*1..16]->(t)
WHERE all(r IN relationships(route) WHERE abs(r.weight) >= $min_weight)
  AND (s.kind = 'token' OR NOT EXISTS { MATCH (:Node)-[r:FEEDS]->(s) WHERE abs(r.weight) >= $min_weight })
WITH c, route, [r IN relationships(route) | r.weight] AS weights,
     [n IN nodes(route) | replace(n.id, c.id + '/', '')] AS steps
RETURN c.id AS circuit,
       reduce(s = head(steps), step IN tail(steps) | s + ' -> ' + step) AS path,
       length(route) AS hops,
       reduce(m = abs(weights[0]), w IN weights | CASE WHEN abs(w) < m THEN abs(w) ELSE m END) AS strength,
       reduce(x = 1.0, w IN weights | x * w) AS product
ORDER BY strength DESC, hops, circuit, path
LIMIT $limit
