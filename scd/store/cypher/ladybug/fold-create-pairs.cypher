// fold phase 5 on LadybugDB: aggregate relationships that do not exist yet (fold-read-pairs found none),
// created outright (this process holds the only write handle). The rows come as one Arrow table
// (scd.store.aggregates.arrow_rows: src, dst, then the properties): LOAD FROM scans it ~9x faster than UNWIND
// binds the same rows as a list parameter. Not COPY: COPY into the relationship table inside the fold's
// transaction changed list values of unrelated Feature nodes in LadybugDB 0.22 (tests/test_stores.py, with and
// without deletes before it).
LOAD FROM $rows
MATCH (a:__FROM__ {id: src})
MATCH (b:__TO__ {id: dst})
CREATE (a)-[:__REL__ {circuits: circuits, n_edges: n_edges, weight_sum: weight_sum,
  abs_weight_sum: abs_weight_sum, effect_sum: effect_sum, effect_circuits: effect_circuits,
  example_circuit: example, example_circuit_1: example_circuit_1, example_weight_1: example_weight_1,
  example_circuit_2: example_circuit_2, example_weight_2: example_weight_2,
  example_circuit_3: example_circuit_3, example_weight_3: example_weight_3}]->(b)
RETURN count(*) AS n
