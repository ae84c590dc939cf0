// fold phase 4: which of a batch's pairs already have an aggregate relationship, with its values; ``handle``
// (the relationship's element id) lets fold-update-pairs find it again without expanding a dense Feature.
// Both ends found by element id (r.ah, r.bh; see fold-create-pairs).
UNWIND $rows AS r
MATCH (a:__FROM__) WHERE elementId(a) = r.ah
MATCH (b:__TO__) WHERE elementId(b) = r.bh
MATCH (a)-[x:__REL__]->(b)
RETURN r.a AS a, r.b AS b, elementId(x) AS handle, x.circuits AS circuits, x.n_edges AS n_edges,
  x.weight_sum AS weight_sum, x.abs_weight_sum AS abs_weight_sum, x.effect_sum AS effect_sum,
  x.effect_circuits AS effect_circuits, x.example_circuit AS example,
  x.example_circuits AS example_circuits, x.example_weights AS example_weights, x.examples AS examples
