// fold phase 6: the claimed circuits are in the layer now, and in its nodes' totals
UNWIND $ids AS cid MATCH (c:Circuit {id: cid}) SET c.aggregated = true, c.in_totals = true
