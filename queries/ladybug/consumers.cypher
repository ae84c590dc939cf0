// LadybugDB dialect of consumers (same name, parameters and result): LadybugDB sums INT64 counts into INT128, which
// reaches pandas as float, so the edge count is cast back with to_int64; the rest is the library text verbatim.
MATCH (s:Feature)
WHERE s.id = $feature OR $token IN (s.top_promoted[0..$top_n])
WITH s  // a barrier: LadybugDB 0.22 drops the weight filter below for some rows without it
MATCH (s)<-[:OF]-(u:Node)-[e:FEEDS]->(d:Node)-[:OF]->(f:Feature)
WHERE abs(e.weight) >= $min_weight AND ($include_errors OR NOT f.kind IN ['error', 'token', 'logit'])
WITH f, u.circuit_id AS cid, count(e) AS n, sum(e.weight) AS w, sum(abs(e.weight)) AS aw
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = cid AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
WITH f, cid, n, w, aw, p.text AS text
ORDER BY aw DESC, cid SKIP 0  // LadybugDB wants SKIP or LIMIT after an ORDER BY in WITH
WITH f, count(cid) AS circuits, to_int64(sum(n)) AS edges, sum(w) AS total, sum(aw) AS abs_weight, collect(text) AS texts
WITH f, circuits, edges, total, abs_weight, texts,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_weight / edges
          ELSE abs_weight END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, edges, abs_weight, (abs_weight + total) / 2 AS pos_weight, (total - abs_weight) / 2 AS neg_weight,
       abs_weight / edges AS mean_abs_weight, texts[0..3] AS examples
ORDER BY score DESC, abs_weight DESC, feature
LIMIT $limit
