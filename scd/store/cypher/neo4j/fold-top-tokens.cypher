// fold phase 2: the STORED top_token of each feature involved (the first writer's metadata) and its kind, and its element id:
// the fold's later statements find the node by it (a direct record read) instead of by an index seek on its id
UNWIND $ids AS i MATCH (f:Feature {id: i}) RETURN f.id AS id, f.top_token AS top_token, f.kind AS kind, elementId(f) AS handle
