"""Benchmark: the bulk path (scd.store.bulk) against writing through transactions.

Synthetic circuits (tests/synthetic.py; ``--edges`` in all, ``--edges-per-circuit`` each) are

1. written into a new embedded store and folded, as `scd ingest` does (the transactional path; edges/s);
2. exported from it with `scd export-csv`'s code (edges/s of the export);
3. written straight to CSV as `scd ingest --csv-out` does (write, fold in memory, files; edges/s);
4. loaded into a fresh database with `neo4j-admin database import full` from the Neo4j harness's jars
   (scripts/neo4j/neo4j-local fetch): wall time of the whole command (JVM start included) and the importer's
   own "IMPORT DONE in" time, as edges/s.

Printed: each rate, the ratios against step 1, and the load average (a shared 2-core machine changes the numbers
a lot). The Neo4j ingest rate is bench/ingest.py's to measure; compare with its write-only figure.

    python bench/bulk.py --edges 200000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scd.core.config import StoreConfig  # noqa: E402
from scd.store import open_store  # noqa: E402
from scd.store.bulk import CsvStore, export_store  # noqa: E402
from tests.synthetic import synthetic_circuit  # noqa: E402


def admin_import(folder: Path, db: Path) -> tuple[float, float | None]:
    """(wall seconds, importer's own seconds) of folder/import.sh with the harness's neo4j-admin."""
    lib = subprocess.run(
        [str(ROOT / "scripts/neo4j/neo4j-local"), "fetch"], capture_output=True, text=True, check=True
    ).stdout.strip()
    home = db / "home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "neo4j.conf").write_text(f"server.directories.data={db / 'data'}\n")
    admin = db / "neo4j-admin"
    admin.write_text(f'#!/bin/sh\nexec java -Xmx1g -cp "{lib}/*" org.neo4j.cli.AdminTool "$@"\n')
    admin.chmod(0o755)
    env = os.environ | {"NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf"), "NEO4J_ADMIN": str(admin)}
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            str(folder / "import.sh"),
            "--report-file",
            str(db / "import.report"),
            "--max-off-heap-memory=512m",
            "--threads=2",
            "neo4j",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"neo4j-admin import failed:\n{(done.stdout + done.stderr)[-2000:]}")
    m = re.search(r"IMPORT DONE in (?:(\d+)m )?(\d+)s (\d+)ms", done.stdout)
    own = None if m is None else int(m[1] or 0) * 60 + int(m[2]) + int(m[3]) / 1000
    return wall, own


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edges", type=int, default=200_000)
    ap.add_argument("--edges-per-circuit", type=int, default=10_000)
    ap.add_argument("--no-import", action="store_true", help="skip step 4 (no Java)")
    args = ap.parse_args(argv)
    n = max(1, args.edges // args.edges_per_circuit)
    e = args.edges_per_circuit
    circuits = [synthetic_circuit(i, max(40, e // 4), e) for i in range(n)]
    edges = sum(len(c.edges) for c in circuits)
    print(f"{n} circuits, {edges:,} edges; load average before: {os.getloadavg()[0]:.1f}")
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="scd-bench-bulk-") as tmp:
        root = Path(tmp)
        config = StoreConfig.resolve(store=root / "store")
        with open_store(config) as store:
            t0 = time.perf_counter()
            for c in circuits:
                store.write_circuit(c)
            store.fold()
            rates["embedded ingest (write + fold)"] = edges / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            export_store(store, root / "export")
            rates["scd export-csv (embedded)"] = edges / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        with CsvStore(root / "csv-out") as out:
            for c in circuits:
                out.write_circuit(c)
            out.fold()
        rates["scd ingest --csv-out (write + fold + files)"] = edges / (time.perf_counter() - t0)
        if not args.no_import:
            wall, own = admin_import(root / "csv-out", root / "db")
            rates["neo4j-admin import, wall (JVM start included)"] = edges / wall
            if own:
                rates["neo4j-admin import, its own time"] = edges / own
    base = rates["embedded ingest (write + fold)"]
    for name, rate in rates.items():
        print(f"{name:48s} {rate:12,.0f} edges/s  {rate / base:6.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.1f} (2 cores; other processes share them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
