// name: top-features
// description: Features that appear in the most circuits, optionally of one layer or kind.
// param: layer: int = null — only features of this layer (block index)
// param: kind: string = null — only this kind: resid, attn, mlp, transcoder, error, token or logit (default: SAE latents, i.e. not token, logit or error)
// param: limit: int = 25 — rows to return
// example: scd query top-features
// example: scd query top-features -p layer=2 -p kind=attn
MATCH (n:Node)-[:OF]->(f:Feature)
WHERE (f.layer = $layer OR $layer IS NULL)
  AND (f.kind = $kind OR ($kind IS NULL AND NOT f.kind IN ['token', 'logit', 'error']))
WITH f, count(DISTINCT n.circuit_id) AS circuits, count(n) AS nodes, avg(n.attribution) AS mean_attribution
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.top_promoted[0..3] AS promotes, circuits, nodes,
       mean_attribution
ORDER BY circuits DESC, nodes DESC, feature
LIMIT $limit
