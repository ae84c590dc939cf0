// fold phase 5 on LadybugDB: existing aggregate relationships are replaced -- deleted here, created again with
// their new totals by fold-create-pairs (a SET needs the per-pair match that plans badly, see fold-read-pairs).
// Not COPY: COPY into a relationship table after such deletes, in one transaction, changed list properties of
// unrelated Feature nodes in LadybugDB 0.22 (seen in tests/test_stores.py's order test).
UNWIND $rows AS r
MATCH (a:__FROM__ {id: r.k})-[x:__REL__]->(b:__TO__)
WHERE list_contains(r.o, b.id)
DELETE x
