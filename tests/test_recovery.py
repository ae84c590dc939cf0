"""The embedded store recovers by itself and never loses committed data: an unfinished checkpoint, reads while
another process writes and checkpoints, a full disk.

The states are made deterministically, never by timing luck: a checkpoint that stops half way is a child whose
file size limit (RLIMIT_FSIZE, like a full disk) refuses the last page the checkpoint appends, found by running
the same checkpoint once without the limit; the child is then killed with SIGKILL. LadybugDB itself refuses a
read-only open of such a store (checked first, so the test cannot pass vacuously).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import ladybug
import pytest

from scd.core.config import StoreConfig
from scd.store import open_store

from .synthetic import store_snapshot, synthetic_circuit, synthetic_circuits

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))

# The child: write one circuit (committed), then CHECKPOINT; say how the checkpoint went and wait to be killed.
CHECKPOINT_CHILD = """
import sys, time
from scd.core.config import StoreConfig
from scd.store import open_store
from tests.synthetic import synthetic_circuit
store = open_store(StoreConfig(path=sys.argv[1]))
assert store.write_circuit(synthetic_circuit(13))
try:
    with store._writer() as conn:
        conn.execute('CHECKPOINT')
except Exception as e:
    print('checkpoint failed', flush=True)
else:
    print('checkpoint done', flush=True)
sys.stdin.readline()
"""


def _data_file(folder: Path) -> Path:
    return folder / "graph.lbdb"


def _checkpoint_child(folder: Path, limit: int | None) -> subprocess.Popen:
    def set_limit():
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.Popen(
        [sys.executable, "-c", CHECKPOINT_CHILD, str(folder)],
        cwd=REPO,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=set_limit,
    )


def _ladybug_refuses_read_only(folder: Path) -> str:
    try:
        ladybug.Database(str(_data_file(folder)), read_only=True).close()
    except RuntimeError as e:
        return str(e)
    return ""


def make_unfinished_checkpoint(base: Path, folder: Path) -> subprocess.Popen:
    """Copy of ``base`` whose child died (SIGKILL) half way through a checkpoint; returns the killed child."""
    trial = folder.with_name(folder.name + "-trial")
    shutil.copytree(base, trial)
    child = _checkpoint_child(trial, None)  # the same checkpoint, unlimited: how big the data file gets
    assert child.stdout.readline().strip() == "checkpoint done"
    child.communicate("\n")
    full_size = _data_file(trial).stat().st_size
    shutil.copytree(base, folder)
    child = _checkpoint_child(folder, full_size - 4096)  # the checkpoint's last page cannot be written
    try:
        assert child.stdout.readline().strip() == "checkpoint failed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    return child


def _base_store(tmp_path: Path, circuits) -> Path:
    base = tmp_path / "base"
    with open_store(StoreConfig(path=base)) as store:
        for c in circuits:
            assert store.write_circuit(c)
    return base


@pytest.mark.slow
def test_read_only_open_completes_an_unfinished_checkpoint(tmp_path):
    """kill -9 in the middle of a checkpoint: LadybugDB refuses a read-only open ("checkpoint recovery is
    pending"); scd's read-only open completes the recovery under the write lock and serves every committed
    circuit -- the one whose checkpoint was interrupted included."""
    circuits = synthetic_circuits(2)
    base = _base_store(tmp_path, circuits)
    folder = tmp_path / "store"
    make_unfinished_checkpoint(base, folder)
    assert "read-only" in _ladybug_refuses_read_only(folder)  # the recovery-pending state is really there
    expected_store = _base_store(tmp_path / "expected", [*circuits, synthetic_circuit(13)])
    with open_store(StoreConfig(path=expected_store), read_only=True) as store:
        expected = store_snapshot(store)
    with open_store(StoreConfig(path=folder), read_only=True) as store:
        assert store_snapshot(store) == expected
    assert _ladybug_refuses_read_only(folder) == ""  # recovered for good, not just for this read
    with open_store(StoreConfig(path=folder)) as store:  # and writable as ever
        assert store.write_circuit(synthetic_circuit(14))
        assert store.fold().circuits == 4


@pytest.mark.slow
def test_cli_query_after_an_unfinished_checkpoint(tmp_path):
    """The same state through the command line: `scd store stats` and `scd cypher` answer, exit 0."""
    base = _base_store(tmp_path, synthetic_circuits(2))
    folder = tmp_path / "store"
    make_unfinished_checkpoint(base, folder)
    assert "read-only" in _ladybug_refuses_read_only(folder)
    scd = [
        sys.executable,
        "-c",
        "import sys; from scd.cli import main; sys.argv[0] = 'scd'; sys.exit(main())",
    ]
    r = subprocess.run(
        [
            *scd,
            "cypher",
            "MATCH (c:Circuit) RETURN count(c) AS n",
            "--store",
            str(folder),
            "--format",
            "json",
        ],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["n"] == 3


@pytest.mark.slow
def test_a_read_waits_for_the_process_holding_an_unfinished_checkpoint(tmp_path):
    """While the process whose checkpoint failed is still alive (it holds the write lock), a read neither fails
    nor breaks in: it waits, and answers once that process has ended."""
    base = _base_store(tmp_path, synthetic_circuits(2))
    trial = tmp_path / "trial"
    shutil.copytree(base, trial)
    child = _checkpoint_child(trial, None)
    assert child.stdout.readline().strip() == "checkpoint done"
    child.communicate("\n")
    folder = tmp_path / "store"
    shutil.copytree(base, folder)
    child = _checkpoint_child(folder, _data_file(trial).stat().st_size - 4096)
    result: dict = {}

    def read():
        try:
            with open_store(StoreConfig(path=folder), read_only=True) as store:
                result["circuits"] = int(store.read("MATCH (c:Circuit) RETURN count(c) AS n")["n"][0])
        except Exception as e:  # noqa: BLE001 -- reported by the assertion below
            result["error"] = e

    try:
        assert child.stdout.readline().strip() == "checkpoint failed"
        reader = threading.Thread(target=read)
        reader.start()
    finally:
        os.kill(child.pid, signal.SIGKILL)  # the holder ends (as a crash: it cannot close its broken handle)
        child.wait()
    reader.join(timeout=120)
    assert not reader.is_alive()
    assert result == {"circuits": 3}


QUERY_LOOP_WRITER = """
import sys
from scd.core.config import StoreConfig
from scd.store import open_store
from tests.synthetic import synthetic_circuits
store = open_store(StoreConfig(path=sys.argv[1]))
store.hold_s = 0  # give the write lock back (a checkpoint) after every write: many checkpoints to read across
print('writing', flush=True)
for c in synthetic_circuits(int(sys.argv[2]), seed=5):
    assert store.write_circuit(c)
    with store._writer() as conn:
        conn.execute('CHECKPOINT')
store.fold()
store.close()
print('done', flush=True)
"""


@pytest.mark.slow
def test_a_query_loop_during_another_process_ingest_and_checkpoints(tmp_path):
    """Reads in a loop while another process writes circuits, checkpointing after each: every read answers,
    the counts only grow, and the last read sees everything."""
    base = _base_store(tmp_path, synthetic_circuits(2))
    n = 6
    writer = subprocess.Popen(
        [sys.executable, "-c", QUERY_LOOP_WRITER, str(base), str(n)],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[int] = []
    try:
        assert writer.stdout.readline().strip() == "writing"
        store = open_store(StoreConfig(path=base), read_only=True)
        while writer.poll() is None:
            seen.append(int(store.read("MATCH (c:Circuit) RETURN count(c) AS n")["n"][0]))
        assert writer.stdout.read().strip() == "done"
        assert writer.returncode == 0
        seen.append(int(store.read("MATCH (c:Circuit) RETURN count(c) AS n")["n"][0]))
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait()
    assert seen == sorted(seen) and seen[0] >= 2 and seen[-1] == 2 + n
    assert len(seen) > 1


# -- a full disk ---------------------------------------------------------------------------------------------

SCD = [sys.executable, "-c", "import sys; from scd.cli import main; sys.argv[0] = 'scd'; sys.exit(main())"]


def _mount_tmpfs(mnt: Path, size_kb: int) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], capture_output=True
    )
    return r.returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("disk", ["file-size-limit", "tmpfs"])
def test_a_full_disk_is_one_message_and_the_store_folds_afterwards(tmp_path, disk):
    """`scd store fold` on a store whose disk fills up: one line on stderr, exit 1 (not LadybugDB's abort,
    134), nothing lost; after space is freed the same command folds everything.

    ``tmpfs``: a real size-limited file system (needs root to mount; skipped otherwise). ``file-size-limit``:
    RLIMIT_FSIZE makes the write fail with EFBIG (a simulated full disk, available everywhere)."""
    circuits = synthetic_circuits(3)
    base = _base_store(tmp_path, circuits)
    limit = None
    if disk == "tmpfs":
        mnt = tmp_path / "mnt"
        # room for the copied store and 32 KiB more: the fold's write-ahead log (hundreds of aggregate rows)
        # does not fit, whatever the fold's design
        stored = sum(f.stat().st_size for f in base.rglob("*") if f.is_file())
        size_kb = stored // 1024 + 32
        if not _mount_tmpfs(mnt, size_kb):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        folder = mnt / "store"
    else:
        folder = tmp_path / "store"
        limit = 512 * 1024  # the fold's WAL grows past this

    try:
        shutil.copytree(base, folder)

        def set_limit():
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        fold = [*SCD, "store", "fold", "--store", str(folder)]
        r = subprocess.run(fold, cwd=tmp_path, env=ENV, capture_output=True, text=True, preexec_fn=set_limit)
        assert r.returncode == 1, (r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: the disk under the embedded store"), r.stderr
        assert "free space" in lines[0] and "delete" not in lines[0]
        if disk == "tmpfs":
            subprocess.run(["mount", "-o", "remount,size=65536k", str(mnt)], check=True)
        r = subprocess.run(fold, cwd=tmp_path, env=ENV, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "folded 3 circuits" in r.stdout
        with open_store(StoreConfig(path=folder), read_only=True) as store:
            assert store.pending() == 0
            assert {c.id for c in circuits} == set(store.read("MATCH (c:Circuit) RETURN c.id AS id")["id"])
    finally:
        if disk == "tmpfs":
            subprocess.run(["umount", str(mnt)], check=False)
