// a batch of Nodes, each with HAS from its Circuit and OF to its Feature (rows: positional lists)
MATCH (c:Circuit {id: $circuit_id})
UNWIND $nodes AS r
MATCH (f:Feature {id: r[1]})
CREATE (c)-[:HAS]->(n:Node {id: r[0], circuit_id: $circuit_id, feature_id: r[1], kind: r[2], layer: r[3],
  hook: r[4], idx: r[5], pos: r[6], token: r[7], activation: r[8], attribution: r[9], effect: r[10]})-[:OF]->(f)
