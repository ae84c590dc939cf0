// fold phase 5 on LadybugDB: existing aggregate relationships get their new totals and examples in place.
// Anchored on the start node like fold-read-pairs (one row per start node: r.k, its end ids r.o and their
// values r.v in the same order); CAST: a value that is null in every row binds as STRING
UNWIND $rows AS r
MATCH (a:__FROM__ {id: r.k})-[x:__REL__]->(b:__TO__)
WHERE list_contains(r.o, b.id)
WITH x, list_extract(r.v, list_position(r.o, b.id)) AS q
SET x.circuits = q.circuits, x.n_edges = q.n_edges, x.weight_sum = q.weight_sum,
  x.abs_weight_sum = q.abs_weight_sum, x.effect_sum = q.effect_sum, x.effect_circuits = q.effect_circuits,
  x.example_circuit = q.example,
  x.example_circuit_1 = q.example_circuit_1, x.example_weight_1 = q.example_weight_1,
  x.example_circuit_2 = CAST(q.example_circuit_2 AS STRING),
  x.example_weight_2 = CAST(q.example_weight_2 AS DOUBLE),
  x.example_circuit_3 = CAST(q.example_circuit_3 AS STRING),
  x.example_weight_3 = CAST(q.example_weight_3 AS DOUBLE)
RETURN count(*) AS n
