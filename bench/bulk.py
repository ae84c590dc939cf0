"""Benchmark: the bulk path (scd.store.bulk) against writing through transactions.

Synthetic circuits (tests/synthetic.py; ``--edges`` in all, ``--edges-per-circuit`` each) are

1. written into a new embedded store and folded, as `scd ingest` does (the transactional path; edges/s);
2. exported from it with `scd export-csv`'s code (edges/s of the export);
3. written straight to CSV as `scd ingest --csv-out` does (write, fold in memory, files; edges/s);
4. loaded into a fresh database with `neo4j-admin database import full` from the Neo4j harness's jars
   (scripts/neo4j/neo4j-local fetch): wall time of the whole command (JVM start included) and the importer's
   own "IMPORT DONE in" time, as edges/s.

Printed: each rate by wall clock and by CPU time (this process's, or the importer's: its children's), the ratios
against step 1, and the load average. On a shared 2-core machine the wall clock mostly measures the other jobs;
CPU seconds are the steadier comparison. The Neo4j ingest rate is bench/ingest.py's to measure; compare with its write-only figure.

    python bench/bulk.py --edges 200000
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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


class Clock:
    """Wall and CPU seconds of a block (CPU: this process plus its finished children)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, _cpu() - self.cpu


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


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
    clocks: dict[str, Clock] = {}
    with tempfile.TemporaryDirectory(prefix="scd-bench-bulk-") as tmp:
        root = Path(tmp)
        config = StoreConfig.resolve(store=root / "store")
        with open_store(config) as store:
            with Clock() as clocks["embedded ingest (write + fold)"]:
                for c in circuits:
                    store.write_circuit(c)
                store.fold()
            with Clock() as clocks["scd export-csv (embedded)"]:
                export_store(store, root / "export")
        with Clock() as clocks["scd ingest --csv-out (write + fold + files)"]:
            with CsvStore(root / "csv-out") as out:
                for c in circuits:
                    out.write_circuit(c)
                out.fold()
        own = None
        if not args.no_import:
            with Clock() as clocks["neo4j-admin import (JVM start included)"]:
                _, own = admin_import(root / "csv-out", root / "db")
    base = clocks["embedded ingest (write + fold)"]
    print(f"{'':48s} {'wall edges/s':>14s} {'x':>6s} {'CPU edges/s':>13s} {'x':>6s}")
    for name, c in clocks.items():
        wall, cpu = edges / c.wall, edges / c.cpu
        print(
            f"{name:48s} {wall:14,.0f} {wall * base.wall / edges:6.1f} {cpu:13,.0f} {cpu * base.cpu / edges:6.1f}"
        )
    if own:
        print(f"neo4j-admin's own 'IMPORT DONE in' time: {own:.1f} s = {edges / own:,.0f} edges/s")
    print(f"load average after: {os.getloadavg()[0]:.1f} (2 cores; other processes share them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
