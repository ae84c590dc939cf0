// a batch of FEEDS edges between Nodes found by id
UNWIND $rows AS r
MATCH (a:Node {id: r.src})
MATCH (b:Node {id: r.dst})
CREATE (a)-[:FEEDS {weight: r.weight, share: r.share}]->(b)
