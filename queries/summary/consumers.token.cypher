// consumers' summary line from the pre-aggregated layer, used in the same cases as queries/aggregated/consumers.token.cypher:
// the same line as queries/summary/consumers.cypher (|weight| by the other end's kind; the kinds the line does not
// name summed as 'features'), from one node: the fold keeps these sums on it (out_abs_*, scd.store.schema), so no
// pass over every TOKEN_FEEDS out of it. Unset on a layer folded by an older scd: the runner then reads the FEEDS edges.
MATCH (k:Token {id: $token})
UNWIND ['error', 'logit', 'features'] AS kind
RETURN kind, CASE kind WHEN 'error' THEN k.out_abs_error WHEN 'logit' THEN k.out_abs_logit
                       ELSE k.out_abs_weight - k.out_abs_error - k.out_abs_logit END AS abs_weight
ORDER BY kind
