// fold phase 0 where some circuit of the layer is missing from the nodes' totals: compute every total again from
// the relationships (what the fold's increments add up to; first unset, so a node an older scd's fold left
// behind keeps nothing stale), then mark every circuit of the layer. ';'-separated statements, one transaction.
MATCH (n:Feature) WHERE n.in_abs_weight IS NOT NULL OR n.out_abs_weight IS NOT NULL
SET n.in_abs_weight = NULL, n.in_abs_error = NULL, n.in_abs_token = NULL, n.out_abs_weight = NULL,
  n.out_abs_error = NULL, n.out_abs_logit = NULL;
MATCH (a:Feature)-[x:FEEDS_FEATURE]->(b:Feature)
WITH a, sum(x.abs_weight_sum) AS w,
  sum(CASE WHEN b.kind = 'error' THEN x.abs_weight_sum ELSE 0.0 END) AS e,
  sum(CASE WHEN b.kind = 'logit' THEN x.abs_weight_sum ELSE 0.0 END) AS l
SET a.out_abs_weight = w, a.out_abs_error = e, a.out_abs_logit = l;
MATCH (a:Feature)-[x:FEEDS_FEATURE]->(b:Feature)
WITH b, sum(x.abs_weight_sum) AS w,
  sum(CASE WHEN a.kind = 'error' THEN x.abs_weight_sum ELSE 0.0 END) AS e,
  sum(CASE WHEN a.kind = 'token' THEN x.abs_weight_sum ELSE 0.0 END) AS t
SET b.in_abs_weight = w, b.in_abs_error = e, b.in_abs_token = t;
MATCH (a:Feature)-[x:FEEDS_TOKEN]->(k:Token)
WITH k, sum(x.abs_weight_sum) AS w,
  sum(CASE WHEN a.kind = 'error' THEN x.abs_weight_sum ELSE 0.0 END) AS e,
  sum(CASE WHEN a.kind = 'token' THEN x.abs_weight_sum ELSE 0.0 END) AS t
SET k.in_abs_weight = w, k.in_abs_error = e, k.in_abs_token = t;
MATCH (k:Token)-[x:TOKEN_FEEDS]->(b:Feature)
WITH k, sum(x.abs_weight_sum) AS w,
  sum(CASE WHEN b.kind = 'error' THEN x.abs_weight_sum ELSE 0.0 END) AS e,
  sum(CASE WHEN b.kind = 'logit' THEN x.abs_weight_sum ELSE 0.0 END) AS l
SET k.out_abs_weight = w, k.out_abs_error = e, k.out_abs_logit = l;
MATCH (k:Token) SET k.in_abs_weight = coalesce(k.in_abs_weight, 0.0), k.in_abs_error = coalesce(k.in_abs_error, 0.0),
  k.in_abs_token = coalesce(k.in_abs_token, 0.0), k.out_abs_weight = coalesce(k.out_abs_weight, 0.0),
  k.out_abs_error = coalesce(k.out_abs_error, 0.0), k.out_abs_logit = coalesce(k.out_abs_logit, 0.0);
MATCH (a:Feature)-[:FEEDS_FEATURE]->()
WITH DISTINCT a
SET a.in_abs_weight = coalesce(a.in_abs_weight, 0.0), a.in_abs_error = coalesce(a.in_abs_error, 0.0),
  a.in_abs_token = coalesce(a.in_abs_token, 0.0);
MATCH ()-[:FEEDS_FEATURE]->(b:Feature)
WITH DISTINCT b
SET b.out_abs_weight = coalesce(b.out_abs_weight, 0.0), b.out_abs_error = coalesce(b.out_abs_error, 0.0),
  b.out_abs_logit = coalesce(b.out_abs_logit, 0.0);
MATCH (c:Circuit) WHERE coalesce(c.aggregated, true) SET c.in_totals = true
