// name: feature
// description: One feature's card: its label, what it responds to (top contexts, frequency, max activation), what it promotes, and how often it appears in circuits.
// param: id: string — the feature id, e.g. demo/demo/blocks.1.hook_mlp_out/64
// example: scd query feature -p id=demo/demo/blocks.1.hook_mlp_out/64
//
// The card fields come from `scd features label` (scd.discovery.labels); they are null until it ran. `scd feature
// ID` prints this row as a card.
MATCH (f:Feature)
WHERE f.id = $id
OPTIONAL MATCH (n:Node)-[:OF]->(f)
WITH f, count(DISTINCT n.circuit_id) AS circuits, count(n) AS nodes, sum(abs(n.attribution)) AS abs_attribution
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.frequency AS frequency,
       f.max_activation AS max_activation, f.top_contexts AS top_contexts, f.top_activations AS top_activations,
       f.top_promoted[0..5] AS promotes, f.top_suppressed[0..5] AS suppresses, circuits, nodes, abs_attribution,
       f.neuronpedia_url AS neuronpedia_url
