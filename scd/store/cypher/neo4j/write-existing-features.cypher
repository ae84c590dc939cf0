// one record back, not one per feature: each record is a Bolt message the client decodes on
// the write path
UNWIND $ids AS i MATCH (f:Feature {id: i}) RETURN collect(f.id) AS ids
