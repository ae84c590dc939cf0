// fold phase 6: the claimed circuits are in the layer now
UNWIND $ids AS cid MATCH (c:Circuit {id: cid}) SET c.aggregated = true
