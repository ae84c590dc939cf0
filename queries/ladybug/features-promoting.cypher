// LadybugDB dialect of features-promoting (same name, parameters and result): no list comprehensions,
// so the token's place comes from list_position (1-based, like LadybugDB's list indexing).
MATCH (f:Feature)
WHERE $token IN (f.top_promoted[0..$top_n])
WITH f, list_position(f.top_promoted, $token) AS rank
MATCH (n:Node)-[:OF]->(f)
WITH f, rank, count(DISTINCT n.circuit_id) AS circuits, count(n) AS nodes,
     sum(abs(n.attribution)) AS abs_attribution, avg(n.attribution) AS mean_attribution
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, rank,
       f.top_promoted_logits[rank] AS logit, circuits, nodes, abs_attribution, mean_attribution
ORDER BY rank, abs_attribution DESC, logit DESC, feature
LIMIT $limit
