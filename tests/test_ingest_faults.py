"""`scd ingest` under faults: Ctrl-C at any phase, a prompts path that is not a regular file, failed prompts
(exit codes), no store folder before the first write.

Signals are real (SIGINT to a child process), sent after a deterministic event (a line the child writes on
stderr, or a circuit visible in the store), never after a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.core.config import StoreConfig
from scd.store import open_store

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
SCD = [sys.executable, "-c", "import sys; from scd.cli import main; sys.argv[0] = 'scd'; sys.exit(main())"]


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A test run started in the background by a
    non-interactive shell (`.ci/run ... &`) ignores SIGINT, children inherit that, and Python then installs no
    KeyboardInterrupt handler: the Ctrl-C these tests send would be lost and the child would run to the end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_a_fifo_as_prompts_file_is_refused(tmp_path):
    """A FIFO would block the read forever (nobody writes to it): refused in one line, exit 2, nothing made.
    Standard input (`-`) is the way to stream prompts, and it works from a pipe."""
    fifo = tmp_path / "prompts.fifo"
    os.mkfifo(fifo)
    store = tmp_path / "store"
    result = invoke("ingest", str(fifo), "--store", str(store))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not a regular file" in lines[0] and "scd ingest -" in lines[0]
    assert not store.exists()


def test_dev_null_as_prompts_file_is_refused(tmp_path):
    result = invoke("ingest", os.devnull, "--store", str(tmp_path / "store"))
    assert result.exit_code == 2 and "is not a regular file" in result.stderr
    assert not (tmp_path / "store").exists()


def _stderr_reader(
    proc: subprocess.Popen, wanted: str
) -> tuple[threading.Event, list[str], threading.Thread]:
    """Collect the child's stderr on a thread; the event is set when a line containing ``wanted`` arrives."""
    seen = threading.Event()
    lines: list[str] = []

    def pump():
        for line in proc.stderr:
            lines.append(line)
            if wanted in line:
                seen.set()
        seen.set()  # EOF: let the waiter look at what came

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return seen, lines, thread


@pytest.mark.slow
def test_sigint_while_checking_a_large_prompts_file(tmp_path):
    """Ctrl-C while a large prompts file is being checked against the model: the run stops in the middle of the
    check (fewer prompts checked than the file has), prints what was written (nothing), exits 130, and no
    store folder appears."""

    from scd.core.errors import ModelError
    from scd.models.bundle import load_bundle

    try:
        load_bundle("demo")
    except ModelError as e:
        pytest.skip(f"demo model not available: {e}")
    n = 1_500_000  # checking them all takes seconds even on a fast machine (~5 us each)
    prompts = tmp_path / "big.txt"
    prompts.write_text("".join(f"f(a[{i}] (x\n" for i in range(n)), encoding="utf-8")
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [*SCD, "ingest", str(prompts), "--model", "demo", "--store", str(store)],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    seen, err, pump = _stderr_reader(proc, f"checking {n} prompts")
    try:
        assert seen.wait(timeout=600) and any("checking" in line for line in err), "".join(err)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out = proc.stdout.read()  # until the child closes it (stderr goes on being read by the pump)
        proc.wait(timeout=120)
        latency = time.monotonic() - t0
        pump.join(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(err)
    assert "0 circuits written" in out
    line = next(x for x in out.splitlines() if x.startswith("interrupted while checking prompts"))
    checked = int(line.split("(")[1].split(" of ")[0])
    assert checked < n, line  # stopped in the middle of the check, not after it
    assert "Interrupted" in "".join(err) and "Traceback" not in "".join(err)
    assert not store.exists()
    print(f"SIGINT -> exit: {latency:.2f} s, {checked} of {n} prompts checked")


@pytest.mark.slow
def test_sigint_while_writing_reports_what_was_written(embedded_config, tmp_path):
    """Ctrl-C after some circuits are in the store: the child's summary counts exactly the circuits the store
    holds, says it was interrupted, exits 130; rerunning completes the rest."""
    n = 40
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt {i} (of [many\n" for i in range(n)), encoding="utf-8")
    cmd = [sys.executable, "-m", "tests.synthetic", str(prompts), "--store", str(embedded_config.path)]
    proc = subprocess.Popen(
        [*cmd, "--delay", "0.3"],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )
    try:
        while True:  # wait for the first committed circuit (a deterministic event, checked by reading)
            assert proc.poll() is None, "the child ended before writing"
            if (Path(embedded_config.path) / "graph.lbdb").exists():
                with open_store(embedded_config, read_only=True) as s:
                    if s.stats()["Circuit"] >= 1:
                        break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    report = json.loads(out.strip().splitlines()[-1])
    assert report["interrupted"] and 1 <= report["written"] < n
    with open_store(embedded_config, read_only=True) as s:
        assert s.stats()["Circuit"] == report["written"]
    rerun = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert again["skipped"] == report["written"] and again["written"] == n - report["written"]


@pytest.mark.slow
def test_failed_prompts_exit_3_unless_allowed_and_fail_fast_leaves_no_folder(tmp_path):
    """5 bad prompts of 9: exit 3 (not 0, not usage's 2), the bad ones on stderr, the good ones written;
    --allow-failures exits 0; --fail-fast on a fresh store stops at check time and leaves no folder."""
    from scd.core.errors import ModelError
    from scd.models.bundle import load_bundle

    try:
        load_bundle("demo")
    except ModelError as e:
        pytest.skip(f"demo model not available: {e}")
    good = ["f(x", "g[a]", "(b", "h(c"]
    bad = ["caf\u00e9 (x", "f(" + "a" * 2000, "f(x\t))", "\u00fc[", "\u00e9(y"]
    prompts = tmp_path / "p.txt"
    prompts.write_text("\n".join(good[:2] + bad + good[2:]) + "\n", encoding="utf-8")
    fresh = tmp_path / "fresh"
    result = invoke(
        "ingest", str(prompts), "--top-k", "2", "--no-progress", "--fail-fast", "--store", str(fresh)
    )
    assert result.exit_code == 2, result.output
    assert not fresh.exists()  # validation failed: nothing written, no folder
    store = tmp_path / "store"
    result = invoke("ingest", str(prompts), "--top-k", "2", "--no-progress", "--store", str(store))
    assert result.exit_code == 3, result.output
    assert "4 circuits written" in result.stdout and "5 failed" in result.stdout
    assert result.stderr.count("failed line") == 5 and "failed line" not in result.stdout
    result = invoke(
        "ingest", str(prompts), "--top-k", "2", "--no-progress", "--allow-failures", "--store", str(store)
    )
    assert result.exit_code == 0, result.output
    assert "0 circuits written, 4 skipped" in result.stdout
    only_bad = tmp_path / "bad.txt"
    only_bad.write_text("\n".join(bad) + "\n", encoding="utf-8")
    none = tmp_path / "none"
    result = invoke("ingest", str(only_bad), "--no-progress", "--store", str(none))
    assert result.exit_code == 3 and not none.exists()  # nothing written: no folder either


def test_opening_a_store_for_writing_creates_nothing_until_a_write(tmp_path):
    config = StoreConfig(path=tmp_path / "store")
    with open_store(config) as store:
        assert not store.has_request("r-x") and store.pending() == 0
        assert not (tmp_path / "store").exists()
