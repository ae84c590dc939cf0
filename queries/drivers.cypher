// name: drivers
// description: What drives a token's prediction: features by how much ablating them lowers the target, averaged over the circuits whose target is the token, strongest first.
// param: token: string — the predicted token, e.g. ")"
// param: min_faithfulness: float = null — only circuits scored at least this faithful count (unscored ones are left out)
// param: include_errors: bool = false — also list SAE error terms and input tokens
// param: order_by: string = "measured" — rank by: measured (the ablation effect), estimated (the attribution), circuits (how many circuits)
// param: limit: int = 50 — rows to return
// choices: order_by = measured | estimated | circuits
// example: scd query drivers -p token=")"
//
// Over the circuits whose target is the token, per feature, each a mean per circuit (0 where the feature is not in
// a circuit):
//   measured  -- the drop of the circuit's metric when the latent is ablated on the prompt, measured at ingest by
//                running the model with it ablated (scd.discovery.effects; scored circuits only, so the mean is
//                over those: circuits ingested with --no-scores have no measurement)
//   estimated -- the same predicted to first order: the feature's node attributions (activation x gradient of
//                the metric, every path), summed per circuit. Where it is far from `measured` the latent acts
//                through a nonlinearity (e.g. an attention pattern) and attribution-based rankings misplace it.
//   direct    -- the weights of its edges straight into the target logit (the part of `estimated` that is direct).
// `measured` is what bench/reading.py and tests/test_reading.py check the ranking against. Features without a
// measurement (transcoder latents, error terms, unscored circuits) rank by `estimated`.
MATCH (q:Prompt)<-[:EXPLAINS]-(k:Circuit)
WHERE q.target = $token AND (k.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
WITH count(k) AS n, count(k.ablation) AS scored
MATCH (p:Prompt)<-[:EXPLAINS]-(c:Circuit)-[:HAS]->(x:Node)-[:OF]->(f:Feature)
WHERE p.target = $token AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
  AND f.kind <> 'logit' AND ($include_errors OR NOT f.kind IN ['error', 'token'])
OPTIONAL MATCH (x)-[e:FEEDS]->(:Node {kind: 'logit'})
WITH n, scored, f, c.id AS cid, p.text AS text, sum(x.attribution) AS a, max(x.effect) AS m,
     sum(coalesce(e.weight, 0.0)) AS d
ORDER BY coalesce(m, a) DESC, cid SKIP 0  // LadybugDB wants SKIP or LIMIT after an ORDER BY in WITH
WITH n, scored, f, count(cid) AS circuits, count(m) AS measured_in, sum(m) AS m_sum, sum(a) AS a_sum,
     sum(d) AS d_sum, collect(text) AS texts
WITH f, circuits, texts, a_sum / n AS estimated, d_sum / n AS direct,
     CASE WHEN measured_in = 0 THEN null ELSE m_sum / scored END AS measured
WITH f, circuits, texts, estimated, direct, measured,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 WHEN $order_by = 'estimated' THEN estimated
          ELSE coalesce(measured, estimated) END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, measured, estimated, direct, texts[0..3] AS examples
ORDER BY score DESC, estimated DESC, feature
LIMIT $limit
