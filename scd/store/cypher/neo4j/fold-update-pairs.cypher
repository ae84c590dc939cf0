// fold phase 5: existing aggregate relationships get their new totals and examples (added up and merged in the
// client; r.p: every property, scd.store.aggregates.properties), found by the element id fold-read-pairs returned.
// += and not =: a relationship's examples only ever grow, so r.p names every property it has; = would first
// remove them all, twice the transaction state (a fold into a layer that had most of its pairs ran out of a
// 1 GiB server's transaction memory)
UNWIND $rows AS r
MATCH ()-[x:__REL__]->() WHERE elementId(x) = r.handle
SET x += r.p
