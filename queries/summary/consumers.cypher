// consumers' summary line (scd.queries.runner.summary): the sum of |weight| out of the sources by downstream
// kind, so "into SAE error terms" = the share of the error kind. Over the Node-level FEEDS edges.
MATCH (s:Feature)
WHERE s.id = $feature OR $token IN (s.top_promoted[0..$top_n])
WITH s
MATCH (s)<-[:OF]-(u:Node)-[e:FEEDS]->(d:Node)-[:OF]->(f:Feature)
WHERE abs(e.weight) >= $min_weight
WITH f.kind AS kind, u.circuit_id AS cid, sum(abs(e.weight)) AS aw
MATCH (c:Circuit)
WHERE c.id = cid AND (c.faithfulness >= $min_faithfulness OR $min_faithfulness IS NULL)
RETURN kind, sum(aw) AS abs_weight
ORDER BY kind
