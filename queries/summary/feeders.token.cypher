// feeders' summary line from the pre-aggregated layer, used in the same cases as queries/aggregated/feeders.token.cypher:
// the same line as queries/summary/feeders.cypher (|weight| by the other end's kind; the kinds the line does not
// name summed as 'features'), from one node: the fold keeps these sums on it (in_abs_*, scd.store.schema), so no
// pass over every FEEDS_TOKEN into it. Unset on a layer folded by an older scd: the runner then reads the FEEDS edges.
MATCH (k:Token {id: $token})
UNWIND ['error', 'token', 'features'] AS kind
RETURN kind, CASE kind WHEN 'error' THEN k.in_abs_error WHEN 'token' THEN k.in_abs_token
                       ELSE k.in_abs_weight - k.in_abs_error - k.in_abs_token END AS abs_weight
ORDER BY kind
