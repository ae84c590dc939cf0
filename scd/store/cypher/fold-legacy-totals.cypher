// fold phase 0: is this a layer folded before nodes kept their totals (in_abs_* / out_abs_*, see
// scd.store.aggregates)? Every fold sets them on every node it touches, so one start node of any FEEDS_FEATURE
// tells for the whole layer; no row: the layer is empty
MATCH (a:Feature)-[:FEEDS_FEATURE]->()
WITH a LIMIT 1
RETURN a.out_abs_weight IS NULL AS legacy
