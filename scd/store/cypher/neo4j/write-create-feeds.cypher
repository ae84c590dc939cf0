// a batch of FEEDS edges between Nodes found by id (the slow path, and edges past EDGE_CHUNK)
UNWIND $rows AS r
MATCH (a:Node {id: r[0]})
MATCH (b:Node {id: r[1]})
CREATE (a)-[:FEEDS {weight: r[2], share: r[3]}]->(b)
