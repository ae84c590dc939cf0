// consumers' summary line from the pre-aggregated layer, used in the same cases as queries/aggregated/consumers.feature.cypher:
// the same line as queries/summary/consumers.cypher (|weight| by the other end's kind; the kinds the line does not
// name summed as 'features'), from one node: the fold keeps these sums on it (out_abs_*, scd.store.schema), so no
// pass over every FEEDS_FEATURE out of it. Unset on a layer folded by an older scd: the runner then reads the FEEDS edges.
MATCH (s:Feature {id: $feature})
UNWIND ['error', 'logit', 'features'] AS kind
RETURN kind, CASE kind WHEN 'error' THEN s.out_abs_error WHEN 'logit' THEN s.out_abs_logit
                       ELSE s.out_abs_weight - s.out_abs_error - s.out_abs_logit END AS abs_weight
ORDER BY kind
