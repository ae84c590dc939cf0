// feeders' summary line (scd.queries.runner.summary): the sum of |weight| into the targets by upstream kind, so
// "unexplained by features" = the share of SAE error terms and input tokens. Over the Node-level FEEDS edges.
MATCH (t:Feature)
WHERE t.id = $feature OR $token IN (t.top_promoted[0..$top_n])
WITH t
MATCH (t)<-[:OF]-(d:Node)<-[e:FEEDS]-(u:Node)-[:OF]->(f:Feature)
WHERE abs(e.weight) >= $min_weight
WITH f.kind AS kind, d.circuit_id AS cid, sum(abs(e.weight)) AS aw
MATCH (c:Circuit)
WHERE c.id = cid AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
RETURN kind, sum(aw) AS abs_weight
ORDER BY kind
