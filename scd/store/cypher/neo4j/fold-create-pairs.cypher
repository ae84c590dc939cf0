// fold phase 5: aggregate relationships that do not exist yet (fold-read-pairs found none), created outright:
// folds run one at a time, so nothing creates the same pair meanwhile, and CREATE skips MERGE's check and locks.
// Both ends found by the element ids fold-top-tokens / fold-*-tokens returned (r.ah, r.bh): no index seeks.
// The properties as one map in the CREATE pattern, each from its own row key (a null one is not stored): ~25%
// faster to run and commit than CREATE then SET x = r.p with the same values (83k relationships, measured).
UNWIND $rows AS r
MATCH (a:__FROM__) WHERE elementId(a) = r.ah
MATCH (b:__TO__) WHERE elementId(b) = r.bh
CREATE (a)-[:__REL__ {circuits: r.circuits, n_edges: r.n_edges, weight_sum: r.weight_sum,
  abs_weight_sum: r.abs_weight_sum, effect_sum: r.effect_sum, effect_circuits: r.effect_circuits,
  example_circuit: r.example, example_circuit_1: r.example_circuit_1, example_weight_1: r.example_weight_1,
  example_circuit_2: r.example_circuit_2, example_weight_2: r.example_weight_2,
  example_circuit_3: r.example_circuit_3, example_weight_3: r.example_weight_3}]->(b)
RETURN count(*) AS n
