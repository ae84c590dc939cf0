"""Stage 3 of scd: the named Cypher library and its runner (installed as ``scd.queries``)."""
