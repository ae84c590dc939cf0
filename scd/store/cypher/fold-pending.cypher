// fold phase 1: pending circuits in id order, with their edge counts (the fold claims up to its edge budget)
MATCH (c:Circuit) WHERE c.aggregated = false
RETURN c.id AS id, c.n_edges AS n_edges ORDER BY id LIMIT $limit
