"""The ingest loop: prompts -> circuits -> store, with progress, resume and a summary.

Phases (the progress bar and the summary use the same words):

1. **load**     -- the model and SAE set, once (``scd.models.bundle.load_bundle``); with a transcoder or CLT set
                   (``demo-plt``, ``demo-clt``, a circuit-tracer folder) circuit-tracer's replacement model
                   instead (``scd.discovery.tracer.load``), and phase 4 is ``scd.discovery.tracer.trace``.
2. **check**    -- every prompt against the tokenizer before anything is written: characters the vocabulary
                   lacks, longer than the model's context, a target or contrast that is not exactly one token.
                   A bad prompt is reported and skipped (``fail_fast`` stops here, with the store untouched).
3. **resume**   -- each prompt's *request key*: a hash of the model, the SAE set, the prompt text, its explicit
                   target / contrast and the discovery options (``DiscoveryConfig.key_options``). Every circuit is written with its request key in
                   the same transaction, so a prompt whose key is already in the store finished in an earlier run
                   and is skipped without being recomputed. (The circuit id itself depends on the target the model
                   predicts, which would cost a forward pass to learn; the request key costs nothing.) A circuit
                   that a concurrent run wrote first is detected at write time instead and counted as skipped.
4. **discover** -- ``scd.discovery.discover.discover_batch`` on the remaining prompts, ``prompt_batch`` (a
                   DiscoveryConfig field) at a time; ``json_out`` also saves each circuit's JSON.
5. **write**    -- one transaction per circuit (``store.prepare`` here, ``store.write_prepared`` on writer
                   threads, so the database writes circuits while the next is discovered), so an interrupted
                   run (Ctrl-C, kill -9, a lost connection) leaves only complete circuits, and rerunning the same
                   command finishes the rest. ``dry_run`` discovers without writing.
6. **fold**     -- add the written circuits to the pre-aggregated layer (scd.store.aggregates), every
                   ``FOLD_EVERY_EDGES`` written edges and at the end of the run, also circuits an interrupted
                   run left pending. Queries stay exact meanwhile: they read the FEEDS edges while any circuit
                   is pending.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scd.core.circuit import Circuit
from scd.core.errors import InputError, ScdError
from scd.discovery.config import NOT_IN_KEY, DiscoveryConfig
from scd.ingest.prompts import PromptSpec
from scd.store.aggregates import FOLD_EVERY_EDGES, FoldReport
from scd.store.base import Store

DiscoverFn = Callable[..., Circuit]


@dataclass
class Failure:
    line: int
    prompt: str
    reason: str

    def describe(self) -> str:
        text = self.prompt if len(self.prompt) <= 40 else self.prompt[:37] + "..."
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{text!r}: {self.reason}"


@dataclass
class IngestReport:
    total: int = 0  # prompts read (after de-duplication)
    written: int = 0  # circuits written by this run
    skipped: int = 0  # already in the store (earlier run, or a concurrent one)
    failed: list[Failure] = field(default_factory=list)
    discovered: int = 0  # circuits computed by this run
    nodes: int = 0  # nodes / edges of the circuits written (discovered, in a dry run)
    edges: int = 0
    elapsed: float = 0.0
    dry_run: bool = False
    store: str = ""
    interrupted: bool = False
    phase: str = ""  # the phase running when the run ended (load, check, discover, write, fold, done)
    checked: int = 0  # prompts checked against the model so far (phase 2)
    fold: FoldReport = field(default_factory=FoldReport)
    pending: int = 0  # circuits left out of the aggregate layer (ingest(fold=False))
    stopped_by: str = ""  # the error that ended the run early ("" if none): what was written still stands
    # writes that raised: a commit whose acknowledgement the lost connection swallowed may still have landed
    in_doubt: int = 0

    def lines(self) -> list[str]:
        done = "discovered (dry run, nothing written)" if self.dry_run else "written"
        n = self.discovered if self.dry_run else self.written
        out = [
            f"{n} circuit{'s' if n != 1 else ''} {done}, {self.skipped} skipped (already stored), "
            f"{len(self.failed)} failed -- of {self.total} prompt{'s' if self.total != 1 else ''}",
            f"{self.nodes} nodes, {self.edges} edges in {self.elapsed:.1f} s"
            + (f" into {self.store}" if self.store and not self.dry_run else ""),
        ]
        if self.fold.circuits:
            out.append(self.fold.line())
        if self.pending:
            out.append(
                f"{self.pending} circuits not yet in the aggregate layer: run `scd store fold` when done"
            )
        out += self.failure_lines()
        if self.stopped_by:
            doubt = (
                f" (up to {self.in_doubt} more may have been committed as the error came: their writes failed "
                "without an answer)"
                if self.in_doubt
                else ""
            )
            out.append(
                f"stopped while {_PHASE_WORDS.get(self.phase, self.phase)} by the error below{doubt}: fix it and "
                "rerun the same command to finish (finished circuits are skipped)"
            )
        if self.interrupted:
            where = f" while {_PHASE_WORDS.get(self.phase, self.phase)}" if self.phase else ""
            if self.phase == "check":
                where += f" ({self.checked} of {self.total} prompts checked)"
            out.append(
                f"interrupted{where}: rerun the same command to finish (finished circuits are skipped)"
            )
        return out

    def summary_lines(self) -> list[str]:
        """lines() without the failed prompts (the CLI prints those on stderr)."""
        failures = set(self.failure_lines())
        return [line for line in self.lines() if line not in failures]

    def failure_lines(self) -> list[str]:
        return [f"  failed {f.describe()}" for f in self.failed]

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("total", "written", "skipped", "discovered", "nodes", "edges")}
        d |= {"failed": [f.__dict__ for f in self.failed], "elapsed": round(self.elapsed, 3)}
        d |= {"dry_run": self.dry_run, "store": self.store, "interrupted": self.interrupted}
        d |= {"phase": self.phase, "checked": self.checked}
        d |= {"stopped_by": self.stopped_by, "in_doubt": self.in_doubt}
        d |= {
            "folded": {**self.fold.__dict__, "seconds": round(self.fold.seconds, 3)},
            "pending": self.pending,
        }
        return d

    def summary(self) -> dict[str, Any]:
        """``to_dict`` less the failures: the scalar part, for scd.queries.render.render_sections."""
        return {k: v for k, v in self.to_dict().items() if k != "failed"}

    def sections(self) -> dict[str, Any]:
        """The failures as a table (line, prompt, reason), for scd.queries.render.render_sections."""
        import pandas as pd

        rows = [(f.line, f.prompt, f.reason) for f in self.failed]
        return {"failed": pd.DataFrame(rows, columns=["line", "prompt", "reason"])}


_PHASE_WORDS = {
    "load": "loading the model",
    "check": "checking prompts",
    "discover": "discovering",
    "write": "writing",
    "fold": "folding",
}


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during an ingest; ``report`` says what was written before it (``report.interrupted``)."""

    def __init__(self, report: IngestReport):
        super().__init__("ingest interrupted")
        self.report = report


def request_key(model: str, sae_set: Any, spec: PromptSpec, options: dict[str, Any]) -> str:
    """What determines a circuit before it is computed (see phase 3)."""
    blob = json.dumps(
        [model, sae_set, spec.text, spec.target, spec.contrast, sorted(options.items())],
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return "r-" + hashlib.sha1(blob.encode("utf-8")).hexdigest()[:20]


def _is_transcoder_set(saes: Any) -> bool:
    """demo-plt, demo-clt or a circuit-tracer transcoder folder (scd.discovery.tracer builds those graphs)."""
    from scd.discovery.tracer import is_transcoder_set

    return is_transcoder_set(saes)


def check_prompt(bundle: Any, spec: PromptSpec) -> None:
    """Raise InputError if the model cannot take this prompt (phase 2). ``bundle`` is a scd.models.bundle.ModelBundle."""
    ids = bundle.tokenizer.encode(spec.text)  # names characters the vocabulary lacks
    n_ctx = bundle.n_ctx
    if len(ids) > n_ctx:
        raise InputError(
            f"the prompt is {len(ids)} tokens; model {bundle.name} reads at most {n_ctx}",
            "shorten the prompt",
        )
    for what, token in (("target", spec.target), ("contrast", spec.contrast)):
        if token is not None:
            try:
                bundle.tokenizer.single_token_id(token)  # InputError unless exactly one token
            except InputError as e:
                raise InputError(f"{what} {token!r}: {e.problem}", e.fix) from e


def ingest(
    prompts: list[PromptSpec],
    store: Store | None,
    *,
    model: Any = "demo",
    saes: Any = None,
    device: str = "cpu",
    dry_run: bool = False,
    json_out: str | Path | None = None,
    fail_fast: bool = False,
    progress: bool = True,
    discover_fn: DiscoverFn | None = None,
    writers: int | None = None,
    fold: bool = True,
    config: DiscoveryConfig | None = None,
    **options: Any,
) -> IngestReport:
    """Discover every prompt's circuit and write it into ``store`` (None only with ``dry_run``).

    ``model`` is a name for ``scd.models.bundle.load_bundle`` (or a loaded ModelBundle; with transcoder ``saes``,
    a loaded ``scd.discovery.tracer.Loaded``); ``config`` (a
    DiscoveryConfig, and/or its fields as keywords in ``options``) says how to discover. ``discover_fn`` replaces
    discovery (tests, benchmarks): it is called as ``discover_fn(text, target=..., contrast=..., **options)``
    with the stand-in's own options, and no model is loaded. Bad prompts are collected in the report (``fail_fast``: the first one raises InputError instead).
    ``writers``: how many circuits are written at once (default: what the store does best, ``store.writers``).
    ``fold=False`` leaves the written circuits pending (queries stay exact; ``store.fold()``, ``scd store fold``
    or the next ingest folds them): for bulk loads by several processes, which then fold once.
    """
    t0 = time.perf_counter()
    if store is None and not dry_run:
        raise ValueError("a store is needed unless dry_run")
    sink = None if dry_run else store  # where circuits go; None: discover only
    report = IngestReport(
        total=len(prompts), dry_run=dry_run, store="" if store is None else store.describe()
    )
    transcoders = discover_fn is None and _is_transcoder_set(saes)
    if discover_fn is None:
        config = DiscoveryConfig.build(config, **options)  # bad options fail here, before anything is loaded
        key_options = config.key_options()
    if transcoders:  # circuit-tracer builds the graphs: its own options, checked before anything is loaded
        from scd.discovery import tracer

        trace_options = tracer.trace_options(config)
        key_options = {"engine": tracer.ENGINE} | {
            k: v for k, v in trace_options.items() if k not in NOT_IN_KEY
        }
    else:  # a stand-in engine: its own options take part in the key like a config's
        options = {k: v for k, v in options.items() if v is not None}
        key_options = (config.key_options() if config is not None else {}) | {
            k: v for k, v in options.items() if k not in NOT_IN_KEY
        }
    out_dir = _prepare_json_out(json_out)

    bar: Any = _NoBar()
    progress_: _Progress | None = None
    writer = None
    try:
        # 1. load
        report.phase = "load"
        bundle: Any  # what check_prompt reads (name, tokenizer, n_ctx); None: a stand-in engine, no checks
        model_key: Any
        sae_key: Any
        if transcoders:
            loaded = model if isinstance(model, tracer.Loaded) else tracer.load(model, saes, device)
            bundle = loaded
            model_key, sae_key = tracer.request_parts(loaded)

            def run(specs: list[PromptSpec]) -> list[Circuit | InputError]:
                return _one_by_one(
                    specs,
                    lambda spec: tracer.trace(spec.text, model=loaded, target=spec.target, **trace_options),
                )

            per_batch = 1  # circuit-tracer attributes one prompt at a time

        elif discover_fn is None:
            from scd.discovery.discover import discover_batch
            from scd.models.bundle import ModelBundle, load_bundle

            sae_bundle = model if isinstance(model, ModelBundle) else load_bundle(model, saes, device=device)
            bundle = sae_bundle
            model_key, sae_key = sae_bundle.name, [sae_bundle.sae_set, sae_bundle.sae_ids]

            def run(specs: list[PromptSpec]) -> list[Circuit | InputError]:
                return discover_batch(
                    [s.text for s in specs],
                    config,
                    model=sae_bundle,
                    targets=[s.target for s in specs],
                    contrasts=[s.contrast for s in specs],
                )

            assert config is not None  # built above when discover_fn is None
            per_batch = config.prompt_batch

        else:
            bundle = None
            model_key, sae_key = str(model), saes

            def run(specs: list[PromptSpec]) -> list[Circuit | InputError]:
                return _one_by_one(
                    specs,
                    lambda spec: discover_fn(
                        spec.text, target=spec.target, contrast=spec.contrast, **options
                    ),
                )

            per_batch = 1

        # 2. check
        report.phase = "check"
        todo: list[PromptSpec] = []
        if bundle is not None and progress:
            print(
                f"checking {len(prompts)} prompts against model {bundle.name} ...",
                file=sys.stderr,
                flush=True,
            )
        for spec in prompts:
            try:
                if bundle is not None:
                    check_prompt(bundle, spec)
                if transcoders and spec.contrast is not None:
                    raise InputError(
                        "transcoder graphs explain the target's demeaned logit, not a contrast",
                        "drop the contrast from this prompt, or ingest it with SAEs",
                    )
                todo.append(spec)
            except InputError as e:
                _fail(report, spec, e, fail_fast)
            report.checked += 1

        if bundle is not None and getattr(bundle, "lazy", False):
            bundle.plan(_token_ids(bundle, todo, config))  # a lazy SAE set slices a chunk per SAE load
        bar = _progress(len(prompts), enabled=progress)
        bar.update(len(prompts) - len(todo))
        progress_ = _Progress(bar, report)
        writer = None if sink is None else _Writer(sink, progress_, writers or sink.writers, fold=fold)
        report.phase = "discover"
        batch: list[tuple[PromptSpec, str]] = []  # prompts waiting to be discovered together, with their keys

        def discover_and_write() -> None:
            # 4. discover (``config.prompt_batch`` prompts per forward/backward)
            results = run([spec for spec, _ in batch])
            for (spec, key), circuit in zip(batch, results, strict=True):
                if isinstance(circuit, InputError):
                    _fail(report, spec, circuit, fail_fast)
                    progress_.done()
                    continue
                report.discovered += 1
                if out_dir is not None:
                    circuit.to_json(out_dir / f"{circuit.id}.json")
                # 5. write (on a writer thread, while this one goes on with the next prompts)
                if writer is None:
                    progress_.done(nodes=len(circuit.nodes), edges=len(circuit.edges))
                else:
                    writer.submit(writer.store.prepare(circuit, request=key), circuit)
            batch.clear()

        for spec in todo:
            # 3. resume
            key = request_key(model_key, sae_key, spec, key_options)
            if sink is not None and sink.has_request(key):
                progress_.done(skipped=1)
                continue
            batch.append((spec, key))
            if len(batch) >= per_batch:
                discover_and_write()
        if batch:
            discover_and_write()
        if writer is not None:
            report.phase = "write"
            writer.close()  # every circuit written (or the writer's error raised here)
            # 6. fold (what this run wrote, and what an interrupted earlier run left pending); a run that
            # wrote nothing into a store that does not exist yet creates nothing
            report.phase = "fold"
            if fold and (report.written or writer.store.pending()):
                _fold(writer.store, progress_)
            elif not fold:
                report.pending = writer.store.pending()
        report.phase = "done"
    except KeyboardInterrupt as e:
        report.interrupted = True
        if writer is not None:
            writer.stop()  # drop what waits, let the transaction in flight end: it is counted below
            writer = None
        raise IngestInterrupted(report) from e
    except ScdError as e:
        if report.written or report.phase in ("write", "fold"):  # work was done: say what stands
            report.stopped_by = e.line()
            e.done = report
        raise
    finally:
        if writer is not None:
            # after an error (a bad prompt with fail_fast, a store error): circuits already discovered are
            # complete, so they are still written; the writer's own error, if any, is already on its way up
            writer.drain()
        if progress_ is not None:
            progress_.close()
        else:
            bar.close()
        report.elapsed = time.perf_counter() - t0
    return report


def _token_ids(bundle: Any, specs: list[PromptSpec], config: DiscoveryConfig | None) -> list[list[int]]:
    """The token ids discovery will run for each prompt (the target convention may drop the last token)."""
    from scd.discovery.discover import prepare

    ids = []
    for spec in specs:
        try:
            ids.append(
                prepare(
                    bundle, spec.text, target=spec.target, contrast=spec.contrast, config=config
                ).token_ids
            )
        except InputError:  # reported when the prompt's turn comes
            continue
    return ids


class _Progress:
    """The report's counters and the progress bar, updated from the main thread and the writer threads."""

    def __init__(self, bar: Any, report: IngestReport):
        self.bar, self.report, self.lock = bar, report, threading.Lock()

    def done(self, *, written: int = 0, skipped: int = 0, nodes: int = 0, edges: int = 0) -> None:
        with self.lock:
            r = self.report
            r.written += written
            r.skipped += skipped
            r.nodes += nodes
            r.edges += edges
            self.bar.update(1)
            self.bar.set_postfix_str(self._counts(), refresh=False)

    def _counts(self) -> str:
        r = self.report
        return f"written={r.written} skipped={r.skipped} failed={len(r.failed)}"

    def close(self) -> None:
        """Show the final counts (the last update does not redraw the bar), then end it."""
        with self.lock:
            self.bar.set_postfix_str(self._counts(), refresh=True)
            self.bar.close()

    def folding(self) -> None:
        with self.lock:
            self.bar.set_postfix_str("folding into the aggregate layer ...", refresh=True)


class _Writer:
    """Writes circuits on threads of their own (``store.writers`` of them: Neo4j runs transactions in parallel,
    the embedded store one at a time), one transaction each, so the database works on circuits while the main
    thread discovers (and prepares) the next; at most one prepared circuit waits. Commit order does not matter:
    each circuit is complete on its own and the fold is order-independent. Folds every FOLD_EVERY_EDGES written
    edges. The first error stops it; ``submit`` / ``close`` raise it."""

    def __init__(self, store: Store, progress: _Progress, threads: int = 1, *, fold: bool = True):
        self.store, self.progress, self.fold = store, progress, fold
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.unfolded = 0
        self.threads = [
            threading.Thread(target=self._run, name=f"scd-writer-{i}", daemon=True) for i in range(threads)
        ]
        for t in self.threads:
            t.start()

    def submit(self, prepared: Any, circuit: Circuit) -> None:
        self._raise()
        self.queue.put((prepared, len(circuit.nodes), len(circuit.edges)))

    def close(self) -> None:
        self._join()
        self._raise()

    def stop(self) -> None:
        if not any(t.is_alive() for t in self.threads):
            return
        try:
            while True:
                self.queue.get_nowait()  # circuits not yet started: the rerun writes them
        except queue.Empty:
            pass
        self._join()

    def drain(self) -> None:
        """Write what waits, then end the threads; never raises (used while another error propagates)."""
        if any(t.is_alive() for t in self.threads):
            self._join()

    def _join(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for t in self.threads:
            t.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain, so a submit() never blocks on a dead writer
            prepared, n_nodes, n_edges = item
            try:
                written = self.store.write_prepared(prepared)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self.error = self.error or e
                with self.progress.lock:  # its commit may have landed with the answer lost
                    self.progress.report.in_doubt += 1
                continue
            if not written:
                self.progress.done(skipped=1)  # a concurrent run wrote it first
                continue
            self.progress.done(written=1, nodes=n_nodes, edges=n_edges)
            with self.lock:
                self.unfolded += n_edges
                fold_now = self.fold and self.unfolded >= FOLD_EVERY_EDGES
                if fold_now:
                    self.unfolded = 0
            if fold_now:
                try:
                    _fold(self.store, self.progress)
                except BaseException as e:  # noqa: BLE001 - handed to the main thread
                    self.error = self.error or e


def _one_by_one(specs: list[PromptSpec], run: Callable[[PromptSpec], Circuit]) -> list[Circuit | InputError]:
    """An engine without batches run on each prompt: its circuit, or the InputError it raised."""
    out: list[Circuit | InputError] = []
    for spec in specs:
        try:
            out.append(run(spec))
        except InputError as e:
            out.append(e)
    return out


def _fold(store: Store, progress: _Progress) -> None:
    progress.folding()
    done = store.fold()
    fold = progress.report.fold
    fold.add(done)
    fold.seconds += done.seconds


def _fail(report: IngestReport, spec: PromptSpec, e: InputError, fail_fast: bool) -> None:
    if fail_fast:
        where = f"line {spec.line}: " if spec.line else ""
        raise InputError(
            f"{where}{e.problem}", (e.fix or "fix the prompt") + " (or drop --fail-fast to skip it)"
        ) from e
    report.failed.append(Failure(spec.line, spec.text, e.line()))


def _prepare_json_out(json_out: str | Path | None) -> Path | None:
    if json_out is None:
        return None
    out = Path(json_out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(
            f"cannot write circuit JSON into {out} ({e.strerror or e})",
            "pass a writable folder to --json-out",
        ) from e
    return out


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, *, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="prompt", desc="ingest", file=sys.stderr, dynamic_ncols=True, smoothing=0.1)
