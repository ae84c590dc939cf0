// scd store fold --rebuild: drop the layer and mark every circuit pending (also upgrades stores written before the
// layer existed)
MATCH ()-[x:FEEDS_FEATURE]->() DELETE x;
MATCH ()-[x:FEEDS_TOKEN]->() DELETE x;
MATCH ()-[x:TOKEN_FEEDS]->() DELETE x;
MATCH (k:Token) DELETE k;
MATCH (c:Circuit) SET c.aggregated = false
