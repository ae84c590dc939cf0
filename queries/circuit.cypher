// name: circuit
// description: One prompt's circuit: its edges above a weight threshold, with both end nodes.
// param: prompt: string — prompt text, prompt id or circuit id
// param: min_weight: float = 0.0 — only edges with |weight| at least this
// param: limit: int = 500 — rows to return
// example: scd query circuit -p prompt="f(a [b (c" -p min_weight=0.1
//
// Nodes are named by their id within the circuit: {hook}/{latent}@{position} (error terms {hook}/error@{pos},
// input tokens token/{id}@{pos}, the target logit logit/{id}@{pos}). If the prompt has several circuits (other
// SAE sets or parameters), each one's edges are listed under its own circuit id.
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt
MATCH (c)-[:HAS]->(a:Node)-[e:FEEDS]->(b:Node)
WHERE abs(e.weight) >= $min_weight
RETURN c.id AS circuit, replace(a.id, c.id + '/', '') AS source, a.token AS source_token,
       replace(b.id, c.id + '/', '') AS target, b.token AS target_token, e.weight AS weight
ORDER BY abs(weight) DESC, circuit, source, target
LIMIT $limit
