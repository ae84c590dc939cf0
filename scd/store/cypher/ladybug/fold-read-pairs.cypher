// fold phase 4: which of a batch's pairs already have an aggregate relationship, with its values (in the order of
// scd.store.aggregates.ROW_KEYS). One row per
// start node with the end ids as a list (r.k, r.o): LadybugDB 0.22 plans a per-pair match of both ends as a join
// (27 s for 20k pairs) and `WHERE b.id = r.b` no better; this form read 10k pairs in 0.4 s.
UNWIND $rows AS r
MATCH (a:__FROM__ {id: r.k})-[x:__REL__]->(b:__TO__)
WHERE list_contains(r.o, b.id)
RETURN a.id AS a, b.id AS b, NULL AS handle, x.circuits AS circuits, x.n_edges AS n_edges,
  x.weight_sum AS weight_sum, x.abs_weight_sum AS abs_weight_sum, x.effect_sum AS effect_sum,
  x.effect_circuits AS effect_circuits, x.example_circuit AS example,
  x.example_circuit_1, x.example_weight_1, x.example_circuit_2, x.example_weight_2, x.example_circuit_3,
  x.example_weight_3
