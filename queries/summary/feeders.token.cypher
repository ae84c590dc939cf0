// feeders' summary line from the pre-aggregated layer: the same rows as queries/summary/feeders.cypher, used in the same
// cases as queries/aggregated/feeders.token.cypher.
MATCH (k:Token {id: $token})<-[a:FEEDS_TOKEN]-(f)  // the type fixes the label: no label check per row
RETURN f.kind AS kind, sum(a.abs_weight_sum) AS abs_weight
ORDER BY kind
