// fold phase 2: the STORED top_token of each feature involved (the first writer's metadata) and its kind; no handle here
// (LadybugDB: fold-create-pairs finds nodes by id), see neo4j/fold-top-tokens.cypher
UNWIND $ids AS i MATCH (f:Feature {id: i}) RETURN f.id AS id, f.top_token AS top_token, f.kind AS kind, NULL AS handle
