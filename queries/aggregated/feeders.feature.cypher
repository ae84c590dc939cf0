// feeders, answered from the pre-aggregated layer (see scd.ingest.schema): the same parameters, columns and rows as
// queries/feeders.cypher, which the runner replaces by this text only when the answer is the same: feature set and
// token null, min_weight <= 0 (every edge counts). One relationship per upstream feature carries the
// circuit count (distinct circuits), the edge count, the weight sum and the smallest circuit id.
MATCH (t:Feature {id: $feature})<-[a:FEEDS_FEATURE]-(f:Feature)
WITH f, a.circuits AS circuits, a.n_edges AS edges, a.weight_sum AS total_weight, a.example_circuit AS example_circuit
ORDER BY circuits DESC, total_weight DESC, f.id
LIMIT $limit
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = example_circuit
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.top_promoted[0..3] AS promotes, circuits, edges,
       total_weight, total_weight / edges AS mean_weight, p.text AS example_prompt
ORDER BY circuits DESC, total_weight DESC, feature
