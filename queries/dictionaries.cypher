// name: dictionaries
// description: One prompt's graphs side by side across dictionaries (SAE sets, per-layer transcoders, cross-layer transcoders): size, error share, scores, and the strongest node feeding the logit.
// param: prompt: string — prompt text or prompt id
// param: limit: int = 50 — rows to return
// example: scd query dictionaries -p prompt="Copyright (C"
//
// One row per circuit of the prompt (each SAE set, transcoder set, or parameter choice). error_share: of the
// |attribution| (total effect on the metric) held by the graph's input nodes -- input tokens and error nodes --
// the share on error nodes. top_feeder: the node with the strongest direct edge into the logit, with what its
// feature promotes and its label where one exists. Faithfulness / completeness are set where they were computed,
// with how (ablation: e.g. zero/circuit for SAE circuits, zero/keep for transcoder graphs) and how the nodes were
// chosen (selection: top-k, or influence:N/E for circuit-tracer's pruning).
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE p.text = $prompt OR p.id = $prompt
MATCH (c)-[:HAS]->(n:Node)
WITH c, count(n) AS nodes,
     count(CASE WHEN NOT n.kind IN ['token', 'logit', 'error'] THEN 1 END) AS features,
     sum(CASE WHEN n.kind = 'error' THEN abs(n.attribution) ELSE 0.0 END) AS err,
     sum(CASE WHEN n.kind IN ['error', 'token'] THEN abs(n.attribution) ELSE 0.0 END) AS inputs
MATCH (c)-[:HAS]->(:Node)-[e:FEEDS]->(l:Node)
WHERE l.kind = 'logit'
WITH c, nodes, features, err, inputs, max(abs(e.weight)) AS best
MATCH (c)-[:HAS]->(u:Node)-[e:FEEDS]->(l:Node)
WHERE l.kind = 'logit' AND abs(e.weight) = best
WITH c, nodes, features, err, inputs, min(u.feature_id) AS top_id, max(e.weight) AS top_weight
MATCH (f:Feature)
WHERE f.id = top_id
RETURN c.sae_set AS sae_set, c.method AS method, nodes, features, c.n_edges AS edges,
       CASE WHEN inputs > 0 THEN err / inputs END AS error_share,
       c.faithfulness AS faithfulness, c.completeness AS completeness, c.ablation AS ablation,
       c.selection AS selection,
       f.kind AS top_kind, f.layer AS top_layer, f.top_promoted[0..3] AS top_promotes, f.label AS top_label,
       top_weight, c.id AS circuit
ORDER BY sae_set, circuit
LIMIT $limit
