// name: top-proximal-causes
// description: Per prompt, the feature node that most directly drives the predicted token: its strongest feeder into the logit, with promoted tokens, label and Neuronpedia URL (the seed article's "Top Proximal Causes" table).
// param: prompt: string = null — only this prompt (text, prompt id or circuit id); null: every circuit
// param: limit: int = 100 — rows to return
// example: scd query top-proximal-causes
//
// A proximal cause is an SAE latent node with a direct FEEDS edge into its circuit's logit node; the top one has
// the largest signed weight (it pushes the target up the most). Error terms and input tokens are not features and
// are left out; a tie gives one row each.
// ($prompt IS NULL comes last: LadybugDB types a parameter by its first use.) promotes/suppresses are the latent's decoder direction read through the
// unembedding (its direct logit effect), the seed's "bottom-most blue row"; top_completions are the model's.
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE (c.id = $prompt OR p.id = $prompt OR p.text = $prompt OR $prompt IS NULL)
MATCH (c)-[:HAS]->(t:Node {kind: 'logit'})
MATCH (n:Node)-[r:FEEDS]->(t)
WHERE NOT n.kind IN ['token', 'error', 'logit']
WITH c, p, t, max(r.weight) AS best
MATCH (n:Node)-[r:FEEDS]->(t)
WHERE NOT n.kind IN ['token', 'error', 'logit'] AND r.weight = best
MATCH (n)-[:OF]->(f:Feature)
RETURN p.text AS prompt, p.target AS target, p.target_prob AS target_prob, p.top_completions AS top_completions,
       f.id AS feature, f.kind AS kind, f.layer AS layer, n.pos AS pos, n.token AS token, r.weight AS weight,
       n.attribution AS attribution, f.top_promoted AS promotes, f.label AS label,
       f.neuronpedia_url AS neuronpedia_url, c.id AS circuit
ORDER BY prompt, circuit, feature, pos
LIMIT $limit
