// fold phase 5: aggregate relationships that do not exist yet (fold-read-pairs found none), created outright:
// folds run one at a time, so nothing creates the same pair meanwhile, and CREATE skips MERGE's check and locks.
// Both ends found by the element ids fold-top-tokens / fold-*-tokens returned (r.ah, r.bh): no index seeks.
// r.p: every property (scd.store.aggregates.properties).
UNWIND $rows AS r
MATCH (a:__FROM__) WHERE elementId(a) = r.ah
MATCH (b:__TO__) WHERE elementId(b) = r.bh
CREATE (a)-[x:__REL__]->(b)
SET x = r.p
RETURN count(*) AS n
