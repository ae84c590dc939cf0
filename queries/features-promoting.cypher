// name: features-promoting
// description: Features whose direct logit effect promotes a token (within their top-N promoted tokens), with how often they appear.
// param: token: string — the promoted token, e.g. ")"
// param: top_n: int = 5 — how deep in a feature's promoted-token list to look (1 = only its top token)
// param: limit: int = 50 — rows to return
// example: scd query features-promoting -p token=")"
//
// rank is the token's place in the feature's promoted list (1 = its top token) and logit the feature's direct
// logit effect on it. circuits counts the circuits the feature appears in; abs_attribution sums |attribution| over its
// nodes (the order within a rank: strongest first), mean_attribution averages it.
MATCH (f:Feature)
WHERE $token IN (f.top_promoted[0..$top_n])
WITH f, [i IN range(0, size(f.top_promoted) - 1) WHERE f.top_promoted[i] = $token][0] AS i
MATCH (n:Node)-[:OF]->(f)
WITH f, i, count(DISTINCT n.circuit_id) AS circuits, count(n) AS nodes, sum(abs(n.attribution)) AS abs_attribution,
     avg(n.attribution) AS mean_attribution
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, i + 1 AS rank,
       f.top_promoted_logits[i] AS logit, circuits, nodes, abs_attribution, mean_attribution
ORDER BY rank, abs_attribution DESC, logit DESC, feature
LIMIT $limit
