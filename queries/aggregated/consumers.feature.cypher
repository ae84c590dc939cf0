// consumers, answered from the pre-aggregated layer (see scd.ingest.schema): the same parameters, columns and rows
// as queries/consumers.cypher, which the runner replaces by this text only when the answer is the same: feature
// set and token null, min_weight <= 0 (every edge counts). One relationship per downstream feature carries the
// circuit count (distinct circuits), the edge count, the signed and |weight| sums, and the strongest circuits'
// prompts (the fold keeps them, scd.store.aggregates).
MATCH (s:Feature {id: $feature})-[a:FEEDS_FEATURE]->(f:Feature)
WHERE $include_errors OR NOT f.kind IN ['error', 'token', 'logit']
// weight_sum and the examples are read after ORDER BY ... LIMIT: only for the rows returned
WITH s, f, a, a.circuits AS circuits, a.n_edges AS edges, a.abs_weight_sum AS abs_weight
WITH s, f, a, circuits, edges, abs_weight,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_weight / edges
          ELSE abs_weight END AS score
ORDER BY score DESC, abs_weight DESC, f.id
LIMIT $limit
// the example prompts: the texts of the (up to 3) strongest circuits the relationship names
WITH s, f, a, circuits, edges, abs_weight, score,
     a.example_circuit_1 AS e1, a.example_circuit_2 AS e2, a.example_circuit_3 AS e3
OPTIONAL MATCH (:Circuit {id: e1})-[:EXPLAINS]->(p1:Prompt)
OPTIONAL MATCH (:Circuit {id: e2})-[:EXPLAINS]->(p2:Prompt)
OPTIONAL MATCH (:Circuit {id: e3})-[:EXPLAINS]->(p3:Prompt)
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, edges, abs_weight, (abs_weight + a.weight_sum) / 2 AS pos_weight,
       (a.weight_sum - abs_weight) / 2 AS neg_weight, abs_weight / edges AS mean_abs_weight,
       CASE WHEN p2 IS NULL THEN [p1.text] WHEN p3 IS NULL THEN [p1.text, p2.text]
            ELSE [p1.text, p2.text, p3.text] END AS examples,
       // the summary line's sums, riding with the rows (the runner takes them off the table): the target's
       // totals, scd.store.schema
       s.out_abs_weight AS scd_total, s.out_abs_error AS scd_error, s.out_abs_logit AS scd_logit
ORDER BY score DESC, abs_weight DESC, feature
