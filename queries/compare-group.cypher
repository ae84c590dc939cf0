// name: compare-group
// description: The SAE features of every circuit whose prompt text matches a regular expression (the input of a group comparison).
// param: pattern: string — regular expression the whole prompt text must match, e.g. ".*\(.*"
// param: limit: int = 100000 — rows to return
// example: scd query compare-group -p pattern=".*\(.*"
//
// One row per (circuit, feature) with the feature's summed attribution there; SAE latents only (no input tokens,
// logits or error terms). `scd compare --pattern` turns these rows into feature frequencies across the group and
// a pairwise Jaccard similarity matrix.
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE p.text =~ $pattern
MATCH (c)-[:HAS]->(n:Node)-[:OF]->(f:Feature)
WHERE NOT f.kind IN ['token', 'logit', 'error']
RETURN c.id AS circuit, p.text AS prompt, f.id AS feature, f.kind AS kind, f.layer AS layer,
       f.top_promoted[0..3] AS promotes, sum(n.attribution) AS attribution
ORDER BY prompt, circuit, feature
LIMIT $limit
