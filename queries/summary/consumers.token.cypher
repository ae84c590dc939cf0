// consumers' summary line from the pre-aggregated layer: the same rows as queries/summary/consumers.cypher, used in the same
// cases as queries/aggregated/consumers.token.cypher.
MATCH (k:Token {id: $token})-[a:TOKEN_FEEDS]->(f)  // the type fixes the label: no label check per row
RETURN f.kind AS kind, sum(a.abs_weight_sum) AS abs_weight
ORDER BY kind
