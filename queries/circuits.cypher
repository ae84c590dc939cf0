// name: circuits
// description: The circuits in the store: all, one prompt's, or those whose prompt text matches a regular expression.
// param: prompt: string = null — prompt text, prompt id or circuit id
// param: pattern: string = null — regular expression the whole prompt text must match, e.g. ".*\(.*"
// param: limit: int = 100 — rows to return
// example: scd query circuits
// example: scd query circuits -p pattern=".*\(.*"
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE (c.id = $prompt OR p.id = $prompt OR p.text = $prompt OR $prompt IS NULL)
  AND (p.text =~ $pattern OR $pattern IS NULL)
RETURN c.id AS circuit, p.text AS prompt, p.target AS target, p.target_prob AS target_prob, c.method AS method,
       c.sae_set AS sae_set, c.n_nodes AS nodes, c.n_edges AS edges, c.faithfulness AS faithfulness
ORDER BY prompt, circuit
LIMIT $limit
