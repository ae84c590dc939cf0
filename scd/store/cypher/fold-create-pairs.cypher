// fold phase 5: aggregate relationships that do not exist yet (fold-read-pairs found none), created outright:
// folds run one at a time, so nothing creates the same pair meanwhile, and CREATE skips MERGE's check and locks
UNWIND $rows AS r
MATCH (a:__FROM__ {id: r.a})
MATCH (b:__TO__ {id: r.b})
CREATE (a)-[:__REL__ {circuits: r.circuits, n_edges: r.n_edges, weight_sum: r.weight_sum,
  abs_weight_sum: r.abs_weight_sum, effect_sum: r.effect_sum, effect_circuits: r.effect_circuits,
  example_circuit: r.example, example_circuits: r.example_circuits,
  example_weights: r.example_weights, examples: r.examples}]->(b)
RETURN count(*) AS n
