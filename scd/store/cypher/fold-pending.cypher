// fold phase 1: pending circuits in id order, with their edge counts (the fold claims up to its edge budget) and
// when they were made (with the edge count, what tells a circuit this process wrote from one stored again by
// another process under the same id after a clear: scd.store.aggregates.WrittenEdges)
MATCH (c:Circuit) WHERE c.aggregated = false
RETURN c.id AS id, c.n_edges AS n_edges, c.created_at AS created_at ORDER BY id LIMIT $limit
