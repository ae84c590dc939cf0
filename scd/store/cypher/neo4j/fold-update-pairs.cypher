// fold phase 5: existing aggregate relationships get their new totals and examples (added up and merged in the
// client; r.p: every property, scd.store.aggregates.properties), found by the element id fold-read-pairs returned
UNWIND $rows AS r
MATCH ()-[x:__REL__]->() WHERE elementId(x) = r.handle
SET x = r.p
