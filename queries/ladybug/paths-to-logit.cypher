// LadybugDB dialect of paths-to-logit (same name, parameters and result): the edge filter sits inside the
// recursive pattern, and lists are built with list_transform / list_min / list_product instead of list
// comprehensions and reduce().
MATCH (c:Circuit)-[:EXPLAINS]->(p:Prompt)
WHERE c.id = $prompt OR p.id = $prompt OR p.text = $prompt
MATCH (c)-[:HAS]->(t:Node {kind: 'logit'})
MATCH route = (s:Node)-[:FEEDS*1..16 (r, n | WHERE abs(r.weight) >= $min_weight AND r.share >= $min_share)]->(t)
WHERE s.kind = 'token' OR NOT EXISTS {
  MATCH (:Node)-[r:FEEDS]->(s) WHERE abs(r.weight) >= $min_weight AND r.share >= $min_share }
WITH c, route, list_transform(rels(route), r -> r.weight) AS weights, list_transform(nodes(route), n -> n.id) AS ids
RETURN c.id AS circuit,
       list_to_string(' -> ', list_transform(ids, id -> replace(id, c.id + '/', ''))) AS path,
       size(weights) AS hops,
       list_min(list_transform(weights, w -> abs(w))) AS strength,
       list_product(weights) AS product
ORDER BY strength DESC, hops, circuit, path
LIMIT $limit
