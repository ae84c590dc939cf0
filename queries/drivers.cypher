// name: drivers
// description: What drives a token's prediction: features by their total effect on the target, summed over the circuits whose target is the token, strongest first.
// param: token: string — the predicted token, e.g. ")"
// param: min_faithfulness: float = null — only circuits scored at least this faithful count (unscored ones are left out)
// param: include_errors: bool = false — also list SAE error terms and input tokens
// param: order_by: string = "effect" — rank by: effect (total effect, signed: pushes towards the token), circuits (how many circuits)
// param: limit: int = 50 — rows to return
// choices: order_by = effect | circuits
// example: scd query drivers -p token=")"
//
// A node's attribution is its total effect on its circuit's metric (activation x gradient of the metric: the
// first-order change when the feature is zero-ablated at that position, through every path, not only its direct
// edges). Over the circuits whose target is the token (n of them): `effect` sums a feature's attributions,
// `per_circuit` = effect / n is the mean over every such circuit (0 where it is not in the circuit) -- what zeroing
// the latent on those prompts is predicted to cost the metric -- and `direct` sums the weights of its edges straight
// into the target logit (direct / effect: how much of its effect is direct). `feeders` ranks direct edges into
// features; this ranks total effect, which is what an ablation measures (bench/reading.py; tests/test_reading.py).
MATCH (q:Prompt)<-[:EXPLAINS]-(k:Circuit)
WHERE q.target = $token AND (k.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
WITH count(k) AS n
MATCH (p:Prompt)<-[:EXPLAINS]-(c:Circuit)-[:HAS]->(x:Node)-[:OF]->(f:Feature)
WHERE p.target = $token AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
  AND f.kind <> 'logit' AND ($include_errors OR NOT f.kind IN ['error', 'token'])
OPTIONAL MATCH (x)-[e:FEEDS]->(:Node {kind: 'logit'})
WITH n, f, c.id AS cid, p.text AS text, sum(x.attribution) AS a, sum(coalesce(e.weight, 0.0)) AS d
ORDER BY a DESC, cid SKIP 0  // LadybugDB wants SKIP or LIMIT after an ORDER BY in WITH
WITH n, f, count(cid) AS circuits, sum(a) AS effect, sum(d) AS direct, collect(text) AS texts
WITH n, f, circuits, effect, direct, texts,
     CASE WHEN $order_by = 'circuits' THEN circuits * 1.0 ELSE effect END AS score
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.label AS label, f.top_promoted[0..3] AS promotes,
       circuits, effect, effect / n AS per_circuit, direct, texts[0..3] AS examples
ORDER BY score DESC, effect DESC, feature
LIMIT $limit
