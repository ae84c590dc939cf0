// fold phase 5: each touched Feature's or Token's totals (the sums of |weight| of its aggregate relationships in
// and out, by the other end's kind; scd.store.aggregates.node_totals) plus this fold's part, found by the element
// id fold-top-tokens / fold-*-tokens returned. Sums of multiples of 2**-36: exact in any order
// (below 2**17).
UNWIND $rows AS r
MATCH (n) WHERE elementId(n) = r.h
SET n.in_abs_weight = coalesce(n.in_abs_weight, 0.0) + r.in_abs_weight,
  n.in_abs_error = coalesce(n.in_abs_error, 0.0) + r.in_abs_error,
  n.in_abs_token = coalesce(n.in_abs_token, 0.0) + r.in_abs_token,
  n.out_abs_weight = coalesce(n.out_abs_weight, 0.0) + r.out_abs_weight,
  n.out_abs_error = coalesce(n.out_abs_error, 0.0) + r.out_abs_error,
  n.out_abs_logit = coalesce(n.out_abs_logit, 0.0) + r.out_abs_logit
RETURN count(*) AS n
