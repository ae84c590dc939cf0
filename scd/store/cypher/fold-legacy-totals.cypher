// fold phase 0: are the nodes' totals (in_abs_* / out_abs_*, see scd.store.aggregates) missing some circuit of
// the layer? Every fold marks what it folds in_totals = true; a circuit in the layer without the mark was folded
// by an older scd (or before the fold existed: aggregated unset), which did not add to the totals
MATCH (c:Circuit)
WHERE coalesce(c.aggregated, true) AND c.in_totals IS NULL
RETURN c.id AS id
LIMIT 1
