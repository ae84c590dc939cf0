// a batch of Nodes, each with HAS from its Circuit and OF to its Feature
MATCH (c:Circuit {id: $circuit_id})
UNWIND $rows AS r
MATCH (f:Feature {id: r.feature_id})
CREATE (c)-[:HAS]->(n:Node {id: r.id, circuit_id: r.circuit_id, feature_id: r.feature_id, kind: r.kind,
  layer: r.layer, hook: r.hook, idx: r.idx, pos: r.pos, token: r.token, activation: r.activation,
  attribution: r.attribution, effect: r.effect})-[:OF]->(f)
