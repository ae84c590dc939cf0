// fold phase 2: one row per circuit, its edges as three parallel lists (far fewer records to decode than one per
// edge): upstream feature ids, downstream feature ids, weights, the upstream nodes' measured effects
// (each as a one-element list)
UNWIND $ids AS cid
MATCH (:Circuit {id: cid})-[:HAS]->(u:Node)-[e:FEEDS]->(d:Node)
RETURN cid, collect(u.feature_id) AS a, collect(d.feature_id) AS b, collect(e.weight) AS w,
  collect([u.effect]) AS e  // wrapped: collect() drops nulls, which would shift the list against the others
