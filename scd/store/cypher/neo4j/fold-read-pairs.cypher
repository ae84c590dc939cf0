// fold phase 4: which of a batch's pairs already have an aggregate relationship, with its values (in the order of
// scd.store.aggregates.ROW_KEYS); ``handle`` (the relationship's element id) lets fold-update-pairs find it again.
// One row per start node (r.ah: its element id) with its end nodes' element ids (r.o): each start node's
// relationships of this type are read once, where a MATCH per pair searched a dense Feature's chain per pair.
UNWIND $rows AS r
MATCH (a:__FROM__) WHERE elementId(a) = r.ah
MATCH (a)-[x:__REL__]->(b:__TO__)
WHERE elementId(b) IN r.o
RETURN r.a AS a, b.id AS b, elementId(x) AS handle, x.circuits AS circuits, x.n_edges AS n_edges,
  x.weight_sum AS weight_sum, x.abs_weight_sum AS abs_weight_sum, x.effect_sum AS effect_sum,
  x.effect_circuits AS effect_circuits, x.example_circuit AS example,
  x.example_circuit_1, x.example_weight_1, x.example_circuit_2, x.example_weight_2, x.example_circuit_3,
  x.example_weight_3
