// LadybugDB dialect of top-features (same name, parameters and result): LadybugDB sums INT64 counts into INT128,
// which reaches pandas as float, so the node count is cast back with to_int64; the rest is the library text.
MATCH (n:Node)-[:OF]->(f:Feature)
WHERE (f.layer = $layer OR $layer IS NULL)
  AND (f.kind = $kind OR ($kind IS NULL AND NOT f.kind IN ['token', 'logit', 'error']))
WITH f, n.circuit_id AS cid, count(n) AS k, sum(abs(n.attribution)) AS aa, sum(n.attribution) AS s
MATCH (c:Circuit)
WHERE c.id = cid AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
WITH f, count(cid) AS circuits, to_int64(sum(k)) AS nodes, sum(aa) AS abs_attribution, sum(s) / sum(k) AS mean_attribution
WITH f, circuits, nodes, abs_attribution, mean_attribution,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_attribution / nodes
          ELSE abs_attribution END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, nodes, abs_attribution, mean_attribution
ORDER BY score DESC, abs_attribution DESC, feature
LIMIT $limit
