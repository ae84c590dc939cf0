// LadybugDB dialect of feeders (same name, parameters and result): LadybugDB sums INT64 counts into INT128, which
// reaches pandas as float, so the edge count is cast back with to_int64; the rest is the library text verbatim.
MATCH (t:Feature)
WHERE t.id = $feature OR $token IN (t.top_promoted[0..$top_n])
WITH t  // a barrier: LadybugDB 0.22 drops the weight filter below for some rows without it
MATCH (t)<-[:OF]-(d:Node)<-[e:FEEDS]-(u:Node)-[:OF]->(f:Feature)
WHERE abs(e.weight) >= $min_weight AND ($include_errors OR NOT f.kind IN ['error', 'token'])
WITH f, d.circuit_id AS cid, count(e) AS n, sum(e.weight) AS w, sum(abs(e.weight)) AS aw, max(u.effect) AS m
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = cid AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
WITH f, cid, n, w, aw, m, p.text AS text
ORDER BY aw DESC, cid SKIP 0  // LadybugDB wants SKIP or LIMIT after an ORDER BY in WITH
WITH f, count(cid) AS circuits, to_int64(sum(n)) AS edges, sum(w) AS total, sum(aw) AS abs_weight, collect(text) AS texts,
     CASE WHEN count(m) = 0 THEN null ELSE sum(m) END AS measured
WITH f, circuits, edges, total, abs_weight, texts, measured,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_weight / edges
          WHEN $order_by = 'measured' THEN coalesce(measured, -1.0e300) ELSE abs_weight END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, edges, abs_weight, (abs_weight + total) / 2 AS pos_weight, (total - abs_weight) / 2 AS neg_weight,
       abs_weight / edges AS mean_abs_weight, measured, texts[0..3] AS examples
ORDER BY score DESC, abs_weight DESC, feature
LIMIT $limit
