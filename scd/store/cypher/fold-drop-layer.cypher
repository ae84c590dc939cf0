// scd store fold --rebuild: drop the layer (with the Features' totals) and mark every circuit pending (also upgrades stores written before the
// layer existed)
MATCH ()-[x:FEEDS_FEATURE]->() DELETE x;
MATCH ()-[x:FEEDS_TOKEN]->() DELETE x;
MATCH ()-[x:TOKEN_FEEDS]->() DELETE x;
MATCH (k:Token) DELETE k;
MATCH (f:Feature) WHERE f.in_abs_weight IS NOT NULL OR f.out_abs_weight IS NOT NULL
SET f.in_abs_weight = NULL, f.in_abs_error = NULL, f.in_abs_token = NULL, f.out_abs_weight = NULL,
  f.out_abs_error = NULL, f.out_abs_logit = NULL;
MATCH (c:Circuit) SET c.aggregated = false, c.in_totals = NULL
