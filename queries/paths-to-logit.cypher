// name: paths-to-logit
// description: The strongest paths from input tokens and features to the target logit within one prompt's circuit.
// param: prompt: string — prompt text, prompt id or circuit id
// param: min_weight: float = 0.0 — only follow edges with |weight| at least this
// param: min_share: float = 0.1 — and |weight| at least this share of the circuit's strongest (FEEDS.share; 0: every edge)
// param: limit: int = 20 — paths to return
// example: scd query paths-to-logit -p prompt="ab (cd [e {fg" -p min_weight=0.05
//
// A path's strength is its weakest link, min |weight| over its edges (a bottleneck: a path is only as strong as
// its weakest edge); product multiplies the signed weights. Only edges passing both min_weight and min_share
// are followed: a dense circuit has more token-to-logit paths than any server can list, and the weak ones are not
// the explanation. Paths run from any node with no feeder passing them, up to 16 hops; circuits are acyclic,
// so every path is simple.
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt
MATCH (c)-[:HAS]->(t:Node {kind: 'logit'})
// A quantified path pattern (Neo4j 5.9+) filters edges while it expands, not after listing every path.
MATCH route = (s:Node) (()-[r:FEEDS WHERE abs(r.weight) >= $min_weight AND r.share >= $min_share]->()){1,16} (t)
WHERE s.kind = 'token' OR NOT EXISTS {
    MATCH (:Node)-[f:FEEDS]->(s) WHERE abs(f.weight) >= $min_weight AND f.share >= $min_share }
WITH c, route, [r IN relationships(route) | r.weight] AS weights,
     [n IN nodes(route) | replace(n.id, c.id + '/', '')] AS steps
RETURN c.id AS circuit,
       reduce(s = head(steps), step IN tail(steps) | s + ' -> ' + step) AS path,
       length(route) AS hops,
       reduce(m = abs(weights[0]), w IN weights | CASE WHEN abs(w) < m THEN abs(w) ELSE m END) AS strength,
       reduce(x = 1.0, w IN weights | x * w) AS product
ORDER BY strength DESC, hops, circuit, path
LIMIT $limit
