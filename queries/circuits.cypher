// name: circuits
// description: The circuits in the store: all, one prompt's, or those whose prompt text matches a regular expression.
// param: prompt: string = null — prompt text, prompt id or circuit id
// param: pattern: string = null — regular expression the whole prompt text must match, e.g. ".*\(.*"
// param: min_faithfulness: float = null — only circuits scored at least this faithful (unscored ones are left out)
// param: limit: int = 100 — rows to return
// example: scd query circuits
// example: scd query circuits -p pattern=".*\(.*"
// example: scd query circuits -p min_faithfulness=0.9
//
// faithfulness and completeness are set where ingest scored the circuit (the default; `--no-scores` skips it),
// measured by `ablation` (e.g. zero/circuit: zero ablation, error terms as circuit members), over the nodes chosen
// by `selection` (top-k per sublayer, or influence:SHARE).
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE (c.id = $prompt OR p.id = $prompt OR p.text = $prompt OR $prompt IS NULL)
  AND (p.text =~ $pattern OR $pattern IS NULL)
  AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
RETURN c.id AS circuit, p.text AS prompt, p.target AS target, p.target_prob AS target_prob, c.method AS method,
       c.sae_set AS sae_set, c.n_nodes AS nodes, c.n_edges AS edges, c.faithfulness AS faithfulness,
       c.completeness AS completeness, c.ablation AS ablation, c.selection AS selection
ORDER BY prompt, circuit
LIMIT $limit
