// feeders, answered from the pre-aggregated layer (see scd.ingest.schema): the same parameters, columns and rows
// as queries/feeders.cypher, which the runner replaces by this text only when the answer is the same: token set
// and feature null, min_weight <= 0 (every edge counts), top_n = 1 (a target is a feature whose top_token is the
// token). One relationship per upstream feature carries the circuit count (distinct circuits), the edge count, the
// signed and |weight| sums, the measured effects' sum (and count), and the strongest circuits' prompts (the fold
// keeps them, scd.store.aggregates).
MATCH (k:Token {id: $token})<-[a:FEEDS_TOKEN]-(f:Feature)
WHERE $include_errors OR NOT f.kind IN ['error', 'token']
// weight_sum and the examples are read after ORDER BY ... LIMIT: only for the rows returned
WITH k, f, a, a.circuits AS circuits, a.n_edges AS edges, a.abs_weight_sum AS abs_weight,
     CASE WHEN coalesce(a.effect_circuits, 0) = 0 THEN null ELSE a.effect_sum END AS measured
WITH k, f, a, circuits, edges, abs_weight, measured,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_weight / edges
          WHEN $order_by = 'measured' THEN coalesce(measured, -1.0e300) ELSE abs_weight END AS score
ORDER BY score DESC, abs_weight DESC, f.id
LIMIT $limit
// the example prompts: the texts of the (up to 3) strongest circuits the relationship names
WITH k, f, a, circuits, edges, abs_weight, measured, score,
     a.example_circuit_1 AS e1, a.example_circuit_2 AS e2, a.example_circuit_3 AS e3
OPTIONAL MATCH (:Circuit {id: e1})-[:EXPLAINS]->(p1:Prompt)
OPTIONAL MATCH (:Circuit {id: e2})-[:EXPLAINS]->(p2:Prompt)
OPTIONAL MATCH (:Circuit {id: e3})-[:EXPLAINS]->(p3:Prompt)
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, edges, abs_weight, (abs_weight + a.weight_sum) / 2 AS pos_weight,
       (a.weight_sum - abs_weight) / 2 AS neg_weight, abs_weight / edges AS mean_abs_weight, measured,
       CASE WHEN p2 IS NULL THEN [p1.text] WHEN p3 IS NULL THEN [p1.text, p2.text]
            ELSE [p1.text, p2.text, p3.text] END AS examples,
       // the summary line's sums, riding with the rows (the runner takes them off the table): the target's
       // totals, scd.store.schema
       k.in_abs_weight AS scd_total, k.in_abs_error AS scd_error, k.in_abs_token AS scd_token
ORDER BY score DESC, abs_weight DESC, feature
