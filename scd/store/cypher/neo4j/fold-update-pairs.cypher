// fold phase 5: existing aggregate relationships get their new totals (added up in the client), found by the
// element id fold-read-pairs returned
UNWIND $rows AS r
MATCH ()-[x:__REL__]->() WHERE elementId(x) = r.handle
SET x.circuits = r.circuits, x.n_edges = r.n_edges, x.weight_sum = r.weight_sum,
  x.abs_weight_sum = r.abs_weight_sum, x.effect_sum = r.effect_sum, x.effect_circuits = r.effect_circuits,
  x.example_circuit = r.example,
  x.example_circuits = r.example_circuits, x.example_weights = r.example_weights, x.examples = r.examples
