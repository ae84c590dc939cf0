// fold phase 5 on LadybugDB: the stored aggregate relationships this fold changes, deleted, to be created again
// with their new totals from the same Arrow table as the new ones (fold-create-pairs). Anchored on the start node
// like fold-read-pairs (one row per start node: r.k, its end ids r.o). Measured on 95k demo-shaped edges folded
// into a layer that had most of their pairs: SET in place (list_position per row to find each pair's values,
// linear in the start node's changed pairs) took ~3x as long as this delete and the re-create together.
UNWIND $rows AS r
MATCH (a:__FROM__ {id: r.k})-[x:__REL__]->(b:__TO__)
WHERE list_contains(r.o, b.id)
DELETE x
RETURN count(*) AS n
