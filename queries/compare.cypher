// name: compare
// description: Two circuits side by side: every SAE feature of either, with its attribution in each and whether it is shared, only in A or only in B.
// param: a: string — circuit A: prompt text, prompt id or circuit id
// param: b: string — circuit B: prompt text, prompt id or circuit id
// param: limit: int = 1000 — rows to return
// example: scd query compare -p a="ab (cd [e {fg" -p b="x = [1, 2, [3, 4"
//
// A feature's attribution in a circuit sums its nodes there (a feature can sit at several positions). SAE
// latents only: input tokens, logits and SAE error terms are left out. `scd compare` adds the Jaccard similarity
// of the two feature sets (shared / (shared + only_a + only_b)).
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $a OR p.id = $a OR p.text = $a OR c.id = $b OR p.id = $b OR p.text = $b
MATCH (c)-[:HAS]->(n:Node)-[:OF]->(f:Feature)
WHERE NOT f.kind IN ['token', 'logit', 'error']
WITH f, c.id = $a OR p.id = $a OR p.text = $a AS in_a, c.id = $b OR p.id = $b OR p.text = $b AS in_b,
     sum(n.attribution) AS attribution
WITH f, count(CASE WHEN in_a THEN 1 END) > 0 AS has_a, count(CASE WHEN in_b THEN 1 END) > 0 AS has_b,
     sum(CASE WHEN in_a THEN attribution ELSE 0.0 END) AS attribution_a,
     sum(CASE WHEN in_b THEN attribution ELSE 0.0 END) AS attribution_b
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.top_promoted[0..3] AS promotes,
       CASE WHEN has_a AND has_b THEN 'shared' WHEN has_a THEN 'only_a' ELSE 'only_b' END AS status,
       CASE WHEN has_a THEN attribution_a END AS attribution_a,
       CASE WHEN has_b THEN attribution_b END AS attribution_b
ORDER BY status DESC, abs(coalesce(attribution_a, 0.0)) + abs(coalesce(attribution_b, 0.0)) DESC, feature
LIMIT $limit
