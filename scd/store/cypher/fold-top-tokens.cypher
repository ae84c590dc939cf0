// fold phase 2: the STORED top_token of each feature involved (the first writer's metadata)
UNWIND $ids AS i MATCH (f:Feature {id: i}) RETURN f.id AS id, f.top_token AS top_token
