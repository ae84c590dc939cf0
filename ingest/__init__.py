"""Stage 2 of scd: write circuits into a graph store (installed as ``scd.ingest``).

``prompts``  reads prompts files; ``pipeline`` discovers and writes them with progress and resume;
``schema`` is the graph model; ``stores/`` holds the only code that knows a database.
"""
