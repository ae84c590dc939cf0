// name: consumers
// description: Downstream features that a feature (by id) or any feature whose top promoted token is a token feeds, across all circuits, strongest first.
// param: feature: string = null — source feature id, e.g. demo/demo/blocks.1.hook_resid_pre/17
// param: token: string = null — source token: matches features whose top-N promoted tokens include it
// param: top_n: int = 1 — how many of a feature's top promoted tokens to match `token` against (1 = only the first)
// param: min_weight: float = 0.0 — ignore FEEDS edges with |weight| below this
// param: min_faithfulness: float = null — only circuits scored at least this faithful count (unscored ones are left out; read from the FEEDS edges, slower)
// param: order_by: string = "weight" — rank by: weight (sum of |weight|), circuits (how many circuits), mean (|weight| per edge)
// param: include_errors: bool = false — also list SAE error terms and the target logit (otherwise only summarised)
// param: limit: int = 50 — rows to return
// requires: feature | token
// choices: order_by = weight | circuits | mean
// example: scd query consumers -p token="("
//
// The mirror image of `feeders`. One row per downstream feature: its label, in how many circuits a source feeds it, over how many edges, the sum
// of |weight| (abs_weight) and its positive and negative parts (pos_weight + neg_weight = the signed total), the
// mean |weight| per edge, and up to 3 example prompts, the circuits where the source feeds it most strongly first.
// SAE error terms and the target logit are not features: left out unless include_errors=true; `scd query` reports
// their shares of the |weight| out of the source under the table (queries/summary/consumers.cypher).
//
// `scd query` / scd.query answer the common cases (exactly one of feature / token, min_weight <= 0, no
// min_faithfulness, top_n = 1 for a token) from the pre-aggregated FEEDS_FEATURE / FEEDS_TOKEN / TOKEN_FEEDS relationships instead
// (queries/aggregated/consumers.*.cypher): the same rows, weight sums to ~1e-11 per circuit. This text reads the
// Node-level FEEDS edges and serves every case.
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
WITH f, count(cid) AS circuits, sum(n) AS edges, sum(w) AS total, sum(aw) AS abs_weight, collect(text) AS texts
WITH f, circuits, edges, total, abs_weight, texts,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_weight / edges
          ELSE abs_weight END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, edges, abs_weight, (abs_weight + total) / 2 AS pos_weight, (total - abs_weight) / 2 AS neg_weight,
       abs_weight / edges AS mean_abs_weight, texts[0..3] AS examples
ORDER BY score DESC, abs_weight DESC, feature
LIMIT $limit
