// name: feeders
// description: Upstream features that feed a feature (by id) or any feature whose top promoted token is a token, across all circuits.
// param: feature: string = null — target feature id, e.g. demo/demo/blocks.1.hook_resid_pre/17
// param: token: string = null — target token: matches features whose top-N promoted tokens include it
// param: top_n: int = 1 — how many of a feature's top promoted tokens to match `token` against (1 = only the first)
// param: min_weight: float = 0.0 — ignore FEEDS edges with |weight| below this
// param: limit: int = 50 — rows to return
// requires: feature | token
// example: scd query feeders -p token=")"
// example: scd query feeders -p feature=demo/demo/blocks.2.hook_resid_pre/5 --format csv
//
// One row per upstream feature: in how many circuits it feeds a target, over how many edges, the total and mean
// edge weight, and one prompt where it does (the circuit with the smallest id). Strongest first.
//
// `scd query` / scd.query answer the common cases (exactly one of feature / token, min_weight <= 0, top_n = 1 for a
// token) from the pre-aggregated FEEDS_FEATURE / FEEDS_TOKEN / TOKEN_FEEDS relationships instead
// (queries/aggregated/feeders.*.cypher): the same rows, weight sums to ~1e-11 per circuit. This text reads the
// Node-level FEEDS edges and serves every case.
MATCH (t:Feature)
WHERE t.id = $feature OR $token IN (t.top_promoted[0..$top_n])
WITH t  // a barrier: LadybugDB 0.22 drops the weight filter below for some rows without it
MATCH (t)<-[:OF]-(d:Node)<-[e:FEEDS]-(u:Node)-[:OF]->(f:Feature)
WHERE abs(e.weight) >= $min_weight
WITH f, count(DISTINCT d.circuit_id) AS circuits, count(e) AS edges, sum(e.weight) AS total_weight,
     avg(e.weight) AS mean_weight, min(d.circuit_id) AS example_circuit
ORDER BY circuits DESC, total_weight DESC, f.id
LIMIT $limit
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = example_circuit
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.top_promoted[0..3] AS promotes, circuits, edges,
       total_weight, mean_weight, p.text AS example_prompt
ORDER BY circuits DESC, total_weight DESC, feature
