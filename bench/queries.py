"""Benchmark: `feeders` on a Neo4j store of 10k synthetic circuits (~5M FEEDS edges); target p50 <= 50 ms.

The store is generated directly in the graph schema of scd.ingest.schema, not through a model, with GPT-2-small
shapes: 12 layers x resid/attn/mlp SAEs of 24576 latents, token nodes at every position, SAE error nodes, one logit
node; 160 nodes and 500 edges per circuit by default. Latent indices follow a Zipf law, so popular features recur
across circuits; every latent's 10 promoted tokens come from a Zipf-weighted 5000-token vocabulary in which ")" is
the 10th most common token (the top token of ~1% of latents: a bracket-heavy corpus).

Load: rows are written as CSV and bulk-loaded with `neo4j-admin database import full` (the Maven harness jars carry
the tool), the store is opened by bench/OpenStore.java with Bolt on loopback, and the store's own schema (its
constraints and indexes, from Neo4jStore.ensure_schema) is built on top. Each step is timed.

Queries: `feeders` runs through the library exactly as `scd query` runs it (scd.queries.runner.run on a Neo4jStore:
an EXPLAIN read-only check, a READ transaction, a DataFrame), >= 50 times per case after 3 warm-up runs, and the
bare query through the driver for reference:
  token       feeders -p token=")"
  feature     feeders -p feature=<the ")" feature with the most nodes>
  feature50   feeders -p feature=<the median ")" feature>

    python bench/queries.py                                # 10k circuits, 500 edges each
    python bench/queries.py --circuits 1000 --runs 50      # smaller
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_LAYERS = 12
SUBLAYERS = ("resid", "attn", "mlp")
HOOKS = ("hook_resid_pre", "hook_attn_out", "hook_mlp_out")
D_SAE = 24576
VOCAB_SIZE = 5000
CLOSE_RANK = 10  # ")" is the 10th most common promoted token
MODEL, SAE_SET = "gpt2-small", "bench"
CHARS = list("abcdefgh ([{,")


def _vocab() -> list[str]:
    words = [f"tok{i}" for i in range(VOCAB_SIZE)]
    words[CLOSE_RANK - 1] = ")"
    return words


def generate(folder: Path, n_circuits: int, n_nodes: int, n_edges: int, seed: int) -> dict:
    """Write the store's rows as neo4j-admin import CSV files into ``folder``; returns row counts."""
    rng = np.random.default_rng(seed)
    files = {
        name: open(folder / f"{name}.csv", "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
        for name in ("prompts", "circuits", "nodes", "explains", "has", "of", "feeds")
    }
    w = {name: csv.writer(f) for name, f in files.items()}
    w["prompts"].writerow(["id:ID(Prompt)", "text", "model", "tokens:string[]", "target", "target_prob:double",
                           "loss:double", "top_completions:string[]", "top_completion_probs:double[]"])  # fmt: skip
    w["circuits"].writerow(["id:ID(Circuit)", "prompt_id", "model", "sae_set", "method", "metric", "top_k:long",
                            "edge_threshold:double", "params", "metric_value:double", "n_nodes:long", "n_edges:long",
                            "created_at"])  # fmt: skip
    w["nodes"].writerow(["id:ID(Node)", "circuit_id", "kind", "layer:long", "hook", "idx:long", "pos:long", "token",
                         "activation:double", "attribution:double", "feature_id"])  # fmt: skip
    w["explains"].writerow([":START_ID(Circuit)", ":END_ID(Prompt)"])
    w["has"].writerow([":START_ID(Circuit)", ":END_ID(Node)"])
    w["of"].writerow([":START_ID(Node)", ":END_ID(Feature)"])
    w["feeds"].writerow([":START_ID(Node)", ":END_ID(Node)", "weight:double"])
    features: dict[str, tuple] = {}  # id -> (kind, layer, hook, idx)
    counts = {"nodes": 0, "edges": 0}
    for i in range(n_circuits):
        cid, pid = f"c-bench{i:07d}", f"p-bench{i:07d}"
        n_tok = int(rng.integers(8, 17))
        text = "".join(rng.choice(CHARS, n_tok - 1)) + "("
        tokens = ["<bos>", *text]
        last = len(tokens) - 1
        w["prompts"].writerow([pid, text, MODEL, ";".join(tokens), ")", 0.5, 0.69, ")", 0.5])
        w["circuits"].writerow([cid, pid, MODEL, SAE_SET, "atp", "ce", 20, 0.0, "{}", 0.69, n_nodes, n_edges,
                                "2025-01-01T00:00:00+00:00"])  # fmt: skip
        w["explains"].writerow([cid, pid])
        # nodes: tokens, then SAE latents / error terms (deduplicated), then the logit
        rows, order, posn = [], [], []
        for pos in range(len(tokens)):
            tid = int(rng.integers(0, 50257))
            fid = f"{MODEL}/token/{tid}"
            features.setdefault(fid, ("token", -1, "hook_embed", tid))
            rows.append((f"token/{tid}@{pos}", "token", -1, "hook_embed", tid, pos, fid))
            order.append(-1)
            posn.append(pos)
        k = 3 * n_nodes
        layers, subs = rng.integers(0, N_LAYERS, k), rng.integers(0, 3, k)
        near = rng.random(k) < 0.7
        pos_all = np.where(near, rng.integers(max(0, last - 4), last + 1, k), rng.integers(0, last + 1, k))
        idxs = np.where(rng.random(k) < 0.08, -1, np.minimum(rng.zipf(1.3, k) - 1, D_SAE - 1))
        seen = set()
        for layer, sub, pos, idx in zip(
            layers.tolist(), subs.tolist(), pos_all.tolist(), idxs.tolist(), strict=True
        ):
            if len(rows) >= n_nodes - 1:
                break
            hook = f"blocks.{layer}.{HOOKS[sub]}"
            name = "error" if idx < 0 else str(idx)
            nid = f"{hook}/{name}@{pos}"
            if nid in seen:
                continue
            seen.add(nid)
            kind = "error" if idx < 0 else SUBLAYERS[sub]
            fid = f"{MODEL}/{SAE_SET}/{hook}/{name}"
            features.setdefault(fid, (kind, layer, hook, idx))
            rows.append((nid, kind, layer, hook, idx, pos, fid))
            order.append(3 * layer + sub)
            posn.append(pos)
        lfid = f"{MODEL}/logit/17"
        features.setdefault(lfid, ("logit", N_LAYERS, "unembed", 17))
        rows.append((f"logit/17@{last}", "logit", N_LAYERS, "unembed", 17, last, lfid))
        order.append(3 * N_LAYERS)
        posn.append(last)
        for nid, kind, layer, hook, idx, pos, fid in rows:
            key = f"{cid}/{nid}"
            w["nodes"].writerow([key, cid, kind, layer, hook, idx, pos, tokens[pos], 1.0, 0.1, fid])
            w["has"].writerow([cid, key])
            w["of"].writerow([key, fid])
        # edges: upstream -> downstream by sublayer rank, never from a later position to an earlier one
        order_a, pos_a, m = np.array(order), np.array(posn), len(rows)
        pairs: list[tuple[int, int]] = []
        taken = set()
        while len(pairs) < n_edges:
            a, b = rng.integers(0, m, 4 * n_edges), rng.integers(0, m, 4 * n_edges)
            ok = (order_a[a] < order_a[b]) & (pos_a[a] <= pos_a[b])
            for x, y in zip(a[ok].tolist(), b[ok].tolist(), strict=True):
                if (x, y) not in taken and len(pairs) < n_edges:
                    taken.add((x, y))
                    pairs.append((x, y))
        weights = rng.normal(0, 0.5, n_edges).round(6)
        for (x, y), wt in zip(pairs, weights.tolist(), strict=True):
            w["feeds"].writerow([f"{cid}/{rows[x][0]}", f"{cid}/{rows[y][0]}", wt])
        counts["nodes"] += len(rows)
        counts["edges"] += n_edges
    # features: promoted tokens drawn once per latent from the Zipf-weighted vocabulary
    words = _vocab()
    p = 1.0 / np.arange(1, VOCAB_SIZE + 1)
    ids = sorted(features)
    promoted = rng.choice(VOCAB_SIZE, size=(len(ids), 10), p=p / p.sum())
    logits = np.sort(rng.uniform(0.5, 3, size=(len(ids), 10)), axis=1)[:, ::-1].round(6)
    with open(folder / "features.csv", "w", newline="", encoding="utf-8") as f:
        fw = csv.writer(f)
        fw.writerow(["id:ID(Feature)", "model", "sae", "hook", "layer:long", "kind", "idx:long",
                     "top_promoted:string[]", "top_promoted_logits:double[]", "top_token"])  # fmt: skip
        for j, fid in enumerate(ids):
            kind, layer, hook, idx = features[fid]
            latent = kind in SUBLAYERS
            fw.writerow([fid, MODEL, f"{SAE_SET}/{hook}" if kind in SUBLAYERS + ("error",) else "", hook, layer, kind,
                         idx, ";".join(words[t] for t in promoted[j]) if latent else "",
                         ";".join(map(str, logits[j])) if latent else "", words[promoted[j][0]] if latent else ""])  # fmt: skip
    for f in files.values():
        f.close()
    counts["features"] = len(ids)
    return counts


def harness_lib() -> Path:
    out = subprocess.run(
        [str(ROOT / "scripts" / "neo4j" / "neo4j-local"), "fetch"], capture_output=True, text=True
    )
    if out.returncode != 0:
        sys.exit(f"could not fetch the Neo4j jars: {out.stderr.strip()[-400:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def admin_import(lib: Path, home: Path, csvs: Path, heap: str) -> None:
    (home / "conf").mkdir(parents=True, exist_ok=True)
    (home / "conf" / "neo4j.conf").write_text("")
    env = dict(os.environ, NEO4J_HOME=str(home), NEO4J_CONF=str(home / "conf"))
    cmd = [
        "java", f"-Xmx{heap}", "-cp", f"{lib}/*", "org.neo4j.cli.AdminTool", "database", "import", "full",
        f"--nodes=Feature={csvs}/features.csv", f"--nodes=Prompt={csvs}/prompts.csv",
        f"--nodes=Circuit={csvs}/circuits.csv", f"--nodes=Node={csvs}/nodes.csv",
        f"--relationships=EXPLAINS={csvs}/explains.csv", f"--relationships=HAS={csvs}/has.csv",
        f"--relationships=OF={csvs}/of.csv", f"--relationships=FEEDS={csvs}/feeds.csv",
        f"--report-file={home / 'import.report'}", "--threads=2", "--overwrite-destination", "neo4j",
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"neo4j-admin import failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")


@contextmanager
def serve(lib: Path, home: Path, heap: str, pagecache_mb: int):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(home / "openstore.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        ["java", f"-Xmx{heap}", "-cp", f"{lib}/*", str(ROOT / "bench" / "OpenStore.java"), str(home), str(port),
         str(pagecache_mb)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
    )  # fmt: skip
    line = proc.stdout.readline()
    if not line.startswith("NEO4J_URI="):
        proc.kill()
        sys.exit(f"could not open the store; see {home / 'openstore.log'}")
    try:
        yield line.split("=", 1)[1].strip()
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
        log.close()


# The schema change this benchmark argues for (see the module docstring): Feature.top_token (= top_promoted[0],
# range-indexed) and Node.feature_id (the id of the Feature the node is OF), and feeders written against them.
PROPOSED_INDEX = "CREATE INDEX feature_top_token IF NOT EXISTS FOR (f:Feature) ON (f.top_token)"
PROPOSED_FEEDERS = """
MATCH (t:Feature)
WHERE t.id = $feature OR t.top_token = $token
MATCH (t)<-[:OF]-(d:Node)<-[e:FEEDS]-(u:Node)
WHERE abs(e.weight) >= $min_weight
WITH u.feature_id AS upstream, count(DISTINCT d.circuit_id) AS circuits, count(e) AS edges,
     sum(e.weight) AS total_weight, avg(e.weight) AS mean_weight, min(d.circuit_id) AS example_circuit
ORDER BY circuits DESC, total_weight DESC, upstream
LIMIT $limit
MATCH (f:Feature {id: upstream})
MATCH (c:Circuit {id: example_circuit})-[:EXPLAINS]->(p:Prompt)
RETURN f.id AS feature, f.kind AS kind, f.layer AS layer, f.top_promoted[0..3] AS promotes, circuits, edges,
       total_weight, mean_weight, p.text AS example_prompt
ORDER BY circuits DESC, total_weight DESC, feature
"""


def percentiles(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def measure(uri: str, runs: int) -> dict:
    from neo4j import GraphDatabase
    from scd.ingest.stores import open_store
    from scd.queries import runner

    from scd.config import StoreConfig

    res: dict = {}
    config = StoreConfig(neo4j_uri=uri)
    t = time.perf_counter()
    with GraphDatabase.driver(uri) as driver, open_store(config) as store:  # open_store builds the schema
        driver.execute_query(PROPOSED_INDEX, database_="neo4j")
        driver.execute_query("CALL db.awaitIndexes(1800)", database_="neo4j")
        res["schema_s"] = time.perf_counter() - t
        print(f"schema (constraints + indexes online): {res['schema_s']:.0f} s", flush=True)
        res["counts"] = store.stats()
        print("store:", ", ".join(f"{k} {v:,}" for k, v in res["counts"].items()), flush=True)
        close = store.read(
            "MATCH (t:Feature) WHERE ')' IN t.top_promoted[0..1] MATCH (t)<-[:OF]-(d:Node) "
            "WITH t, count(d) AS nodes RETURN t.id AS id, nodes ORDER BY nodes DESC, id"
        )
        fan_in = store.read(
            "MATCH (t:Feature) WHERE ')' IN t.top_promoted[0..1] "
            "MATCH (t)<-[:OF]-(:Node)<-[e:FEEDS]-() RETURN count(e) AS edges"
        )["edges"][0]
        res["close"] = {"features": len(close), "nodes": int(close["nodes"].sum()), "edges": int(fan_in)}
        print(f'")" is the top token of {len(close):,} features with {close["nodes"].sum():,} nodes and '
              f"{fan_in:,} incoming FEEDS edges (what feeders -p token=')' aggregates)", flush=True)  # fmt: skip
        cases = {
            "token": {"token": ")"},
            "feature": {"feature": close["id"][0]},
            "feature50": {"feature": close["id"][len(close) // 2]},
        }
        q = runner.get_query("feeders")
        res["timings_ms"] = {}
        for name, params in cases.items():
            bound = q.bind(params)
            for _ in range(3):  # warm the plan cache and the page cache
                runner.run(store, q, params)
            lib, raw = [], []
            for _ in range(runs):
                t = time.perf_counter()
                df = runner.run(store, q, params)
                lib.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                driver.execute_query(q.text, bound, database_="neo4j", routing_="r")
                raw.append((time.perf_counter() - t) * 1000)
            (p50, p95), (r50, r95) = percentiles(lib), percentiles(raw)
            proposed = []
            pbound = {k: v for k, v in bound.items() if k != "top_n"}
            expected = driver.execute_query(q.text, bound, database_="neo4j", routing_="r").records
            got = driver.execute_query(PROPOSED_FEEDERS, pbound, database_="neo4j", routing_="r").records
            same = [list(r.values()) for r in expected] == [list(r.values()) for r in got]
            for _ in range(runs):
                t = time.perf_counter()
                driver.execute_query(PROPOSED_FEEDERS, pbound, database_="neo4j", routing_="r")
                proposed.append((time.perf_counter() - t) * 1000)
            (p50, p95), (r50, r95), (n50, n95) = percentiles(lib), percentiles(raw), percentiles(proposed)
            res["timings_ms"][name] = {"p50": p50, "p95": p95, "bare_p50": r50, "bare_p95": r95, "rows": len(df),
                                       "proposed_p50": n50, "proposed_p95": n95, "proposed_same_rows": same}  # fmt: skip
            print(f"feeders {name:<9} {json.dumps(params):<62} rows {len(df):>3}  p50 {p50:6.1f} ms  "
                  f"p95 {p95:6.1f} ms   (bare driver: p50 {r50:6.1f}  p95 {r95:6.1f};  with top_token + "
                  f"Node.feature_id: p50 {n50:6.1f}  p95 {n95:6.1f}, same rows: {same})", flush=True)  # fmt: skip
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--circuits", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=160, help="nodes per circuit")
    ap.add_argument("--edges", type=int, default=500, help="edges per circuit")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heap", default="2g", help="Java heap for the import and the server")
    ap.add_argument("--pagecache-mb", type=int, default=3072)
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where CSVs and the store go (default: a temp dir)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="scd-bench-queries-"))
    csvs, home = work / "csv", work / "home"
    shutil.rmtree(csvs, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    csvs.mkdir(parents=True)
    res: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(),
                 "load_avg_before": os.getloadavg()}  # fmt: skip
    lib = harness_lib()

    t0 = time.perf_counter()
    res["rows"] = generate(csvs, args.circuits, args.nodes, args.edges, args.seed)
    res["generate_s"] = time.perf_counter() - t0
    print(f"generate {args.circuits:,} circuits ({res['rows']['nodes']:,} nodes, {res['rows']['edges']:,} edges, "
          f"{res['rows']['features']:,} features) as CSV: {res['generate_s']:.0f} s", flush=True)  # fmt: skip
    t = time.perf_counter()
    admin_import(lib, home, csvs, args.heap)
    res["import_s"] = time.perf_counter() - t
    print(f"neo4j-admin database import: {res['import_s']:.0f} s", flush=True)
    t = time.perf_counter()
    with serve(lib, home, args.heap, args.pagecache_mb) as uri:
        res["open_s"] = time.perf_counter() - t
        print(f"open the store with Bolt: {res['open_s']:.0f} s ({uri})", flush=True)
        res |= measure(uri, args.runs)
    load = res["import_s"] + res["open_s"] + res["schema_s"]
    res["load_s"] = load
    print(f"load total (import + open + schema, generation excluded): {load:.0f} s; with generation: "
          f"{load + res['generate_s']:.0f} s")  # fmt: skip
    res["load_avg_after"] = os.getloadavg()
    print(f"load average before/after: {res['load_avg_before'][0]:.1f} / {res['load_avg_after'][0]:.1f} "
          f"on {os.cpu_count()} CPUs (other processes share them)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
