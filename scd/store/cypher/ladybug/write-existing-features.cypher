// which of a circuit's Features are stored already
UNWIND $ids AS i MATCH (f:Feature {id: i}) RETURN f.id
