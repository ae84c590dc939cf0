"""Stage 2 of scd: write circuits into a graph store (installed as ``scd.ingest``).

``prompts`` reads prompts files (and picks a shard); ``pipeline`` discovers and writes them with progress and
resume. The graph model and the code that knows a database live in the store layer, ``scd.store``.
"""
