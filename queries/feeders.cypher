// name: feeders
// description: Upstream features that feed a feature (by id) or any feature whose top promoted token is a token, across all circuits, strongest first.
// param: feature: string = null — target feature id, e.g. demo/demo/blocks.1.hook_resid_pre/17
// param: token: string = null — target token: matches features whose top-N promoted tokens include it
// param: top_n: int = 1 — how many of a feature's top promoted tokens to match `token` against (1 = only the first)
// param: min_weight: float = 0.0 — ignore FEEDS edges with |weight| below this
// param: min_faithfulness: float = null — only circuits scored at least this faithful count (unscored ones are left out; read from the FEEDS edges, slower)
// param: order_by: string = "weight" — rank by: weight (sum of |weight|), circuits (how many circuits), mean (|weight| per edge), measured (what ablating it costs, see below)
// param: include_errors: bool = false — also list SAE error terms and input tokens (otherwise only summarised)
// param: limit: int = 50 — rows to return
// requires: feature | token
// choices: order_by = weight | circuits | mean | measured
// example: scd query feeders -p token=")"
// example: scd query feeders -p feature=demo/demo/blocks.2.hook_resid_pre/5 -p order_by=circuits --format csv
// example: scd query feeders -p token=")" -p order_by=measured
//
// One row per upstream feature: its label, in how many circuits it feeds a target, over how many edges, the sum
// of |weight| (abs_weight) and its positive and negative parts (pos_weight + neg_weight = the signed total), the
// mean |weight| per edge, `measured` -- summed over the circuits where it feeds the target and was measured
// (scored circuits, SAE latents), the drop of the circuit's metric when the feature's latent is ablated on the
// prompt (scd.discovery.effects: a run of the model, not an estimate; through every path, not only these edges) --
// up to 3 example prompts, the circuits where it feeds the target most strongly first. Σ|weight| measures direct
// influence to first order; a latent acting through a nonlinearity (an attention pattern) can weigh little and
// matter most: order_by=measured ranks by what ablating it does.
// SAE error terms and input tokens are not features: left out unless include_errors=true; `scd query` reports
// their share of the |weight| into the target under the table (queries/summary/feeders.cypher).
//
// `scd query` / scd.query answer the common cases (exactly one of feature / token, min_weight <= 0, no
// min_faithfulness, top_n = 1 for a token) from the pre-aggregated FEEDS_FEATURE / FEEDS_TOKEN / TOKEN_FEEDS relationships instead
// (queries/aggregated/feeders.*.cypher): the same rows, weight sums to ~1e-11 per circuit. This text reads the
// Node-level FEEDS edges and serves every case.
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
WITH f, count(cid) AS circuits, sum(n) AS edges, sum(w) AS total, sum(aw) AS abs_weight, collect(text) AS texts,
     CASE WHEN count(m) = 0 THEN null ELSE sum(m) END AS measured
WITH f, circuits, edges, total, abs_weight, texts, measured,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'mean' THEN abs_weight / edges
          WHEN $order_by = 'measured' THEN coalesce(measured, -1.0e300) ELSE abs_weight END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, edges, abs_weight, (abs_weight + total) / 2 AS pos_weight, (total - abs_weight) / 2 AS neg_weight,
       abs_weight / edges AS mean_abs_weight, measured, texts[0..3] AS examples
ORDER BY score DESC, abs_weight DESC, feature
LIMIT $limit
