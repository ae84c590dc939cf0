// name: top-features
// description: The strongest features across circuits (by summed |attribution|, or by circuit count), optionally of one layer or kind.
// param: layer: int = null — only features of this layer (block index)
// param: kind: string = null — only this kind: resid, attn, mlp, transcoder, error, token or logit (default: SAE latents, i.e. not token, logit or error)
// param: min_faithfulness: float = null — only circuits scored at least this faithful count (unscored ones are left out)
// param: order_by: string = "weight" — rank by: weight (sum of |attribution|), circuits (how many circuits), mean (|attribution| per node)
// param: limit: int = 25 — rows to return
// choices: order_by = weight | circuits | mean
// example: scd query top-features
// example: scd query top-features -p layer=2 -p kind=attn -p order_by=circuits
MATCH (n:Node)-[:OF]->(f:Feature)
WHERE (f.layer = $layer OR $layer IS NULL)
  AND (f.kind = $kind OR ($kind IS NULL AND NOT f.kind IN ['token', 'logit', 'error']))
WITH f, n.circuit_id AS cid, count(n) AS k, sum(abs(n.attribution)) AS aa, sum(n.attribution) AS s
MATCH (c:Circuit)
WHERE c.id = cid AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
WITH f, count(cid) AS circuits, sum(k) AS nodes, sum(aa) AS abs_attribution, sum(s) / sum(k) AS mean_attribution
WITH f, circuits, nodes, abs_attribution, mean_attribution,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_attribution / nodes
          ELSE abs_attribution END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, nodes, abs_attribution, mean_attribution
ORDER BY score DESC, abs_attribution DESC, feature
LIMIT $limit
