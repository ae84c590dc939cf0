// fold phase 5 on LadybugDB: see neo4j/fold-add-totals.cypher; found by id (__LABEL__: Feature or Token)
UNWIND $rows AS r
MATCH (n:__LABEL__ {id: r.h})
SET n.in_abs_weight = coalesce(n.in_abs_weight, 0.0) + r.in_abs_weight,
  n.in_abs_error = coalesce(n.in_abs_error, 0.0) + r.in_abs_error,
  n.in_abs_token = coalesce(n.in_abs_token, 0.0) + r.in_abs_token,
  n.out_abs_weight = coalesce(n.out_abs_weight, 0.0) + r.out_abs_weight,
  n.out_abs_error = coalesce(n.out_abs_error, 0.0) + r.out_abs_error,
  n.out_abs_logit = coalesce(n.out_abs_logit, 0.0) + r.out_abs_logit
RETURN count(*) AS n
