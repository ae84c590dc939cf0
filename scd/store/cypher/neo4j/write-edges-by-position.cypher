// appended to write-create-nodes: the first EDGE_CHUNK edges name their end nodes by position in the
// node list, so no index lookups are needed (see CREATE_NODES_AND_EDGES in scd/store/neo4j.py)
WITH collect(n) AS ns
WITH ns, [n IN ns | n.id] = $node_ids AS in_order
UNWIND CASE WHEN in_order THEN $edges ELSE [] END AS e
WITH ns[e[0]] AS a, ns[e[1]] AS b, e[2] AS w, e[3] AS share
CREATE (a)-[:FEEDS {weight: w, share: share}]->(b)
