// name: features-promoting
// description: Features whose direct logit effect promotes a token (within their top-N promoted tokens), with how often they appear.
// param: token: string — the promoted token, e.g. ")"
// param: top_n: int = 5 — how deep in a feature's promoted-token list to look (1 = only its top token)
// param: limit: int = 50 — rows to return
// example: scd query features-promoting -p token=")"
//
// rank is the token's place in the feature's promoted list (1 = its top token) and logit the feature's direct
// logit effect on it. circuits counts the circuits the feature appears in; mean_attribution averages its nodes.
MATCH (f:Feature)
WHERE $token IN (f.top_promoted[0..$top_n])
WITH f, [i IN range(0, size(f.top_promoted) - 1) WHERE f.top_promoted[i] = $token][0] AS i
MATCH (n:Node)-[:OF]->(f)
WITH f, i, count(DISTINCT n.circuit_id) AS circuits, count(n) AS nodes, avg(n.attribution) AS mean_attribution
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, i + 1 AS rank, f.top_promoted_logits[i] AS logit,
       circuits, nodes, mean_attribution
ORDER BY rank, circuits DESC, logit DESC, feature
LIMIT $limit
