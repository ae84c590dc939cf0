"""Benchmark: `feeders` on a Neo4j store of 10k synthetic circuits (~5M FEEDS edges); target p50 <= 50 ms.

The store is generated directly in the graph schema of scd.store.schema, not through a model, with GPT-2-small
shapes: 12 layers x resid/attn/mlp SAEs of 24576 latents, token nodes at every position, SAE error nodes, one logit
node; 160 nodes and 500 edges per circuit by default. Latent indices follow a Zipf law, so popular features recur
across circuits; every latent's 10 promoted tokens come from a Zipf-weighted 5000-token vocabulary in which ")" is
the 10th most common token (the top token of ~1% of latents: a bracket-heavy corpus).

Load: rows are written as CSV and bulk-loaded with `neo4j-admin database import full` (the Maven harness jars carry
the tool), the store is opened by bench/OpenStore.java with Bolt on loopback, and the store's own schema (its
constraints and indexes, from Neo4jStore.ensure_schema) is built on top. Each step is timed.

Queries: `feeders` runs through the library exactly as `scd query` runs it (scd.queries.runner.run on a Neo4jStore:
the read-only gate and the server's EXPLAIN verdict, both cached per text after the warm-up, one auto-commit READ
transaction with the pending check in the same statement, a DataFrame, and the summary line, a second query that
reads the target node's totals after the rows), >= 50 times per case after 3 warm-up runs, and the bare rows query through the
driver for reference; each case prints the library/bare p50 ratio against the target (library p50 <= 1.2 x bare
p50 + 2 ms). The server's CPU is shared with every other process on the machine, so read the ratios together with
the load average printed at the end:
  token       feeders -p token=")"
  feature     feeders -p feature=<the ")" feature with the most nodes>
  feature50   feeders -p feature=<the median ")" feature>
  c-token     consumers -p token=")"
  c-feature   consumers -p feature=<the ")" feature with the most nodes>

    python bench/queries.py                                # 10k circuits, 500 edges each
    python bench/queries.py --circuits 1000 --runs 50      # smaller
    python bench/queries.py --workdir DIR                  # keep the CSVs and the store in DIR, then
    python bench/queries.py --workdir DIR --reuse --no-node-level   # query that store again, quickly
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

from scd.store.schema import NODE_TOTALS  # noqa: E402

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
                            "created_at", "aggregated:boolean", "in_totals:boolean"])  # fmt: skip
    w["nodes"].writerow(["id:ID(Node)", "circuit_id", "kind", "layer:long", "hook", "idx:long", "pos:long", "token",
                         "activation:double", "attribution:double", "feature_id"])  # fmt: skip
    w["explains"].writerow([":START_ID(Circuit)", ":END_ID(Prompt)"])
    w["has"].writerow([":START_ID(Circuit)", ":END_ID(Node)"])
    w["of"].writerow([":START_ID(Node)", ":END_ID(Feature)"])
    w["feeds"].writerow([":START_ID(Node)", ":END_ID(Node)", "weight:double"])
    features: dict[str, tuple] = {}  # id -> (kind, layer, hook, idx)
    fnum: dict[str, int] = {}  # id -> a number, for the pre-aggregated layer
    agg_parts: list[tuple[np.ndarray, ...]] = []  # per circuit: (circuit no., upstream, downstream, weight)
    counts = {"nodes": 0, "edges": 0}
    texts: list[str] = []  # prompt texts by circuit number (the aggregate layer's examples)
    for i in range(n_circuits):
        cid, pid = f"c-bench{i:07d}", f"p-bench{i:07d}"
        n_tok = int(rng.integers(8, 17))
        text = "".join(rng.choice(CHARS, n_tok - 1)) + "("
        texts.append(text)
        tokens = ["<bos>", *text]
        last = len(tokens) - 1
        w["prompts"].writerow([pid, text, MODEL, ";".join(tokens), ")", 0.5, 0.69, ")", 0.5])
        w["circuits"].writerow([cid, pid, MODEL, SAE_SET, "atp", "ce", 20, 0.0, "{}", 0.69, n_nodes, n_edges,
                                "2025-01-01T00:00:00+00:00", "true", "true"])  # fmt: skip
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
        nums = np.array([fnum.setdefault(r[6], len(fnum)) for r in rows])
        px = np.array(pairs)
        agg_parts.append((np.full(n_edges, i), nums[px[:, 0]], nums[px[:, 1]], weights))
        counts["nodes"] += len(rows)
        counts["edges"] += n_edges
    # features: promoted tokens drawn once per latent from the Zipf-weighted vocabulary
    words = _vocab()
    p = 1.0 / np.arange(1, VOCAB_SIZE + 1)
    ids = sorted(features)
    promoted = rng.choice(VOCAB_SIZE, size=(len(ids), 10), p=p / p.sum())
    logits = np.sort(rng.uniform(0.5, 3, size=(len(ids), 10)), axis=1)[:, ::-1].round(6)
    for f in files.values():
        f.close()
    counts["features"] = len(ids)
    top_token = {fid: words[promoted[j][0]] for j, fid in enumerate(ids) if features[fid][0] in SUBLAYERS}
    kinds = np.empty(len(fnum), dtype=object)
    for fid, k in fnum.items():
        kinds[k] = features[fid][0]
    agg_counts, totals = aggregates(folder, agg_parts, fnum, top_token, texts, kinds)
    counts |= agg_counts
    with open(folder / "features.csv", "w", newline="", encoding="utf-8") as f:
        fw = csv.writer(f)
        fw.writerow(["id:ID(Feature)", "model", "sae", "hook", "layer:long", "kind", "idx:long",
                     "top_promoted:string[]", "top_promoted_logits:double[]", "top_token",
                     *(f"{c}:double" for c in NODE_TOTALS)])  # fmt: skip
        for j, fid in enumerate(ids):
            kind, layer, hook, idx = features[fid]
            latent = kind in SUBLAYERS
            sums = totals.get(fid)
            fw.writerow([fid, MODEL, f"{SAE_SET}/{hook}" if kind in SUBLAYERS + ("error",) else "", hook, layer, kind,
                         idx, ";".join(words[t] for t in promoted[j]) if latent else "",
                         ";".join(map(str, logits[j])) if latent else "", words[promoted[j][0]] if latent else "",
                         *([repr(float(x)) for x in sums] if sums is not None else [""] * len(NODE_TOTALS))])  # fmt: skip
    return counts


def aggregates(
    folder: Path, parts: list, fnum: dict[str, int], top_token: dict[str, str], texts: list[str], kinds
) -> tuple[dict, dict]:
    """The pre-aggregated FEEDS_FEATURE / FEEDS_TOKEN / TOKEN_FEEDS relationships and the Token nodes, computed
    from all FEEDS edges at once (what the fold builds circuit by circuit; see scd.store.aggregates), with every
    column scd.store.schema.tables() gives the layer: the sums, the smallest circuit id, and the EXAMPLES strongest
    circuits (largest per-circuit sum of |weight|, ties by circuit id) with their sums (``texts``: one prompt per
    circuit, which sets the circuits' ids); and the nodes' totals over the layer (scd.store.schema NODE_TOTALS;
    ``kinds``: each feature number's kind), the Tokens' in tokens.csv, the Features' returned by feature id."""
    import pandas as pd

    from scd.store.aggregates import EXAMPLES
    from scd.store.bulk import ADMIN_TYPES
    from scd.store.schema import tables

    circuit, u, d, weight = (np.concatenate(x) for x in zip(*parts, strict=True))
    name = np.empty(len(fnum), dtype=object)
    for fid, k in fnum.items():
        name[k] = fid
    words = sorted(set(top_token.values()))
    word_no = {t: k for k, t in enumerate(words)}
    tok = np.full(len(fnum), -1)
    for fid, t in top_token.items():
        tok[fnum[fid]] = word_no[t]
    cids = np.array([f"c-bench{c:07d}" for c in range(len(texts))], dtype=object)
    df = pd.DataFrame(
        {"c": circuit, "u": u, "d": d, "w": weight, "aw": np.abs(weight), "tu": tok[u], "td": tok[d]}
    )
    counts = {}
    # the nodes' totals, in NODE_TOTALS order: in (all, from error terms, from tokens), out (all, into error terms,
    # into logits); a Feature's over FEEDS_FEATURE, a Token's over FEEDS_TOKEN (in) and TOKEN_FEEDS (out)
    ftot, ttot = np.zeros((len(fnum), 6)), np.zeros((len(words), 6))
    ftouched, ttouched = np.zeros(len(fnum), dtype=bool), np.zeros(len(words), dtype=bool)
    specs = (("FEEDS_FEATURE", "u", "d", "Feature", "Feature"), ("FEEDS_TOKEN", "u", "td", "Feature", "Token"),
             ("TOKEN_FEEDS", "tu", "d", "Token", "Feature"))  # fmt: skip
    used: set[int] = set()
    for rel, a, b, la, lb in specs:
        # per circuit first (its group sums rounded as scd.store.aggregates.quantize does), then over circuits
        per = df[(df[a] >= 0) & (df[b] >= 0)].groupby([a, b, "c"], sort=True)
        per = per.agg(n=("w", "size"), ws=("w", "sum"), aws=("aw", "sum"))
        per = per.reset_index()
        per["ws"], per["aws"] = (np.round(per[k] / 2.0**-36) * 2.0**-36 for k in ("ws", "aws"))
        g = per.groupby([a, b], sort=True)
        out = g.agg(
            circuits=("c", "size"), n=("n", "sum"), ws=("ws", "sum"), aws=("aws", "sum"), ex=("c", "min")
        )
        # the strongest circuits of each pair, strongest first: example_circuit_k / example_weight_k, unset (an
        # empty field) past the pair's circuits
        best = per.sort_values([a, b, "aws", "c"], ascending=[True, True, False, True])
        best = best[best.groupby([a, b], sort=False).cumcount() < EXAMPLES]
        lists: dict[str, list] = {
            f"example_{x}_{k}": [] for k in range(1, EXAMPLES + 1) for x in ("circuit", "weight")
        }
        bounds = np.flatnonzero(np.diff(best[a].to_numpy()) | np.diff(best[b].to_numpy())) + 1
        bc, bw = best["c"].to_numpy(), best["aws"].to_numpy()
        for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(best)], strict=True):
            for k in range(EXAMPLES):
                lists[f"example_circuit_{k + 1}"].append(cids[bc[lo + k]] if lo + k < hi else None)
                lists[f"example_weight_{k + 1}"].append(bw[lo + k] if lo + k < hi else np.nan)
        ka, kb = out.index.get_level_values(0).to_numpy(), out.index.get_level_values(1).to_numpy()
        aws = out["aws"].to_numpy()
        if la == "Feature" and lb == "Token":  # FEEDS_TOKEN: into the token, by the feature's kind
            parts_in, parts_out = ((ttot, ttouched, kb, ka),), ()
        elif la == "Token":  # TOKEN_FEEDS: out of the token, by the feature's kind
            parts_in, parts_out = (), ((ttot, ttouched, ka, kb),)
        else:  # FEEDS_FEATURE
            parts_in, parts_out = ((ftot, ftouched, kb, ka),), ((ftot, ftouched, ka, kb),)
        for tot, touched, node, other in parts_in:
            touched[node] = True
            np.add.at(tot[:, 0], node, aws)
            np.add.at(tot[:, 1], node, np.where(kinds[other] == "error", aws, 0.0))
            np.add.at(tot[:, 2], node, np.where(kinds[other] == "token", aws, 0.0))
        for tot, touched, node, other in parts_out:
            touched[node] = True
            np.add.at(tot[:, 3], node, aws)
            np.add.at(tot[:, 4], node, np.where(kinds[other] == "error", aws, 0.0))
            np.add.at(tot[:, 5], node, np.where(kinds[other] == "logit", aws, 0.0))
        start = name[ka] if la == "Feature" else np.array(words, dtype=object)[ka]
        end = name[kb] if lb == "Feature" else np.array(words, dtype=object)[kb]
        used.update(ka.tolist() if la == "Token" else kb.tolist() if lb == "Token" else [])
        known = {"circuits": out["circuits"].to_numpy(), "n_edges": out["n"].to_numpy(),
                 "weight_sum": out["ws"].to_numpy(), "abs_weight_sum": out["aws"].to_numpy(),
                 "example_circuit": cids[out["ex"].to_numpy()], **lists,
                 # no node has a measured effect here (no Node.effect): what the fold writes for such pairs
                 "effect_sum": np.zeros(len(out)), "effect_circuits": np.zeros(len(out), dtype=np.int64)}  # fmt: skip
        columns = tables()[rel][1]
        unknown = [c for c, _ in columns if c not in known]
        if unknown:  # a new aggregate column: this generator must learn to fill it
            sys.exit(f"bench/queries.py does not fill the aggregate column(s) {unknown} of {rel}: add them")
        table = pd.DataFrame({f":START_ID({la})": start, f":END_ID({lb})": end}
                             | {f"{c}:{ADMIN_TYPES[t]}": known[c] for c, t in columns})  # fmt: skip
        table.to_csv(folder / f"{rel.lower()}.csv", index=False, float_format="%.17g")
        counts[rel.lower()] = len(table)
    keep = sorted(used)
    pd.DataFrame(
        {"id:ID(Token)": [words[k] for k in keep]}
        | {f"{c}:double": ttot[keep, i] for i, c in enumerate(NODE_TOTALS)}
    ).to_csv(folder / "tokens.csv", index=False, float_format="%.17g")
    counts["tokens"] = len(used)
    return counts, {name[k]: ftot[k].tolist() for k in np.flatnonzero(ftouched)}


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
        f"--nodes=Token={csvs}/tokens.csv", f"--relationships=FEEDS_FEATURE={csvs}/feeds_feature.csv",
        f"--relationships=FEEDS_TOKEN={csvs}/feeds_token.csv", f"--relationships=TOKEN_FEEDS={csvs}/token_feeds.csv",
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


def _close(u, v) -> bool:
    if isinstance(u, float) and isinstance(v, float):
        return abs(u - v) <= 1e-9 * max(1.0, abs(u), abs(v))
    return u == v


def _same(a, b) -> bool | str:
    """Same rows in the same order (True); floats to a relative 1e-9 (sums added in another order), so rows whose
    ranking values (abs_weight) tie to 1e-9 may come in either order: the layer's sums are rounded per circuit
    (scd.store.aggregates.quantize), and this generator's 6-decimal weights make exact ties common. Else where
    they first differ, and how."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return f"columns {list(a.columns)} vs {list(b.columns)}, {len(a)} vs {len(b)} rows"
    by_key = {x.feature: x for x in b.itertuples(index=False)}
    for i, (x, y) in enumerate(zip(a.itertuples(index=False), b.itertuples(index=False), strict=True)):
        if not _close(x.abs_weight, y.abs_weight):
            return f"row {i} abs_weight: {x.abs_weight!r} vs {y.abs_weight!r}"
        y = by_key.get(x.feature)  # a tied row may sit one place off
        if y is None:
            return f"row {i}: {x.feature} only in the first"
        for col, u, v in zip(a.columns, x, y, strict=True):
            if not _close(u, v):
                return f"row {i} {col}: {u!r} vs {v!r}"
    return True


def percentiles(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def measure(uri: str, runs: int, node_level: bool = True) -> dict:
    from neo4j import GraphDatabase

    from scd.core.config import StoreConfig
    from scd.queries import runner
    from scd.store import open_store

    res: dict = {}
    config = StoreConfig(neo4j_uri=uri)
    t = time.perf_counter()
    with GraphDatabase.driver(uri) as driver, open_store(config) as store:  # open_store builds the schema
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
            "token": ("feeders", {"token": ")"}),
            "feature": ("feeders", {"feature": close["id"][0]}),
            "feature50": ("feeders", {"feature": close["id"][len(close) // 2]}),
            "c-token": ("consumers", {"token": ")"}),
            "c-feature": ("consumers", {"feature": close["id"][0]}),
        }
        res["timings_ms"] = {}
        for name, (qname, params) in cases.items():
            q = runner.get_query(qname)
            bound = q.bind(params)
            routed = q.text_for(store.kind, bound)
            for _ in range(3):  # warm the plan cache and the page cache
                runner.run(store, q, params)
                driver.execute_query(q.text, bound, database_="neo4j", routing_="r")
            lib, rows_only, raw, node = [], [], [], []
            for _ in range(runs):
                t = time.perf_counter()
                df = runner.run(store, q, params)
                lib.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                # the library without the summary line: the cost of its own machinery
                runner._rows(store, q, bound)
                rows_only.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                driver.execute_query(routed, bound, database_="neo4j", routing_="r")
                raw.append((time.perf_counter() - t) * 1000)
                if node_level:
                    t = time.perf_counter()
                    driver.execute_query(
                        q.text, bound, database_="neo4j", routing_="r"
                    )  # the Node-level text
                    node.append((time.perf_counter() - t) * 1000)
            limit = {"limit": 1_000_000}
            full = runner.run_cypher(store, routed, q.bind(params | limit))
            runner.take_totals(full)  # the summary line's sums ride along as extra columns
            ref = runner.run_cypher(store, q.text, q.bind(params | limit))
            same = _same(full, ref)
            (p50, p95), (r50, r95), (o50, _) = percentiles(lib), percentiles(raw), percentiles(rows_only)
            n50, n95 = percentiles(node) if node else (float("nan"), float("nan"))
            ratio, budget = p50 / r50, 1.2 * r50 + 2.0  # target: library p50 <= 1.2 x bare + 2 ms
            res["timings_ms"][name] = {"query": qname, "params": params, "p50": p50, "p95": p95, "bare_p50": r50,
                                       "bare_p95": r95, "rows": len(df), "all_rows": len(ref), "node_level_p50": n50,
                                       "node_level_p95": n95, "aggregated": q.aggregated_case(bound),
                                       "same_rows_as_node_level": same, "library_over_bare": ratio,
                                       "within_1.2x_plus_2ms": p50 <= budget, "rows_only_p50": o50}  # fmt: skip
            print(f"{qname} {name:<9} {json.dumps(params):<62} rows {len(df):>3}  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"
                  f"  (bare driver: p50 {r50:6.1f}  p95 {r95:6.1f};  Node-level text: p50 {n50:6.1f}  p95 {n95:6.1f};"
                  f" all {len(ref)} rows the same: {same})", flush=True)  # fmt: skip
            print(f"  library/bare p50 {ratio:.2f}x ({p50 - r50:+.1f} ms); target <= 1.2x + 2 ms = {budget:.1f} ms: "
                  f"{'met' if p50 <= budget else 'NOT met'}; without the summary line p50 {o50:.1f} ms "
                  f"({o50 / r50:.2f}x)", flush=True)  # fmt: skip
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
    ap.add_argument(
        "--no-node-level",
        action="store_true",
        help="do not time the Node-level text (~1 s a run on 10k circuits)",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="with --workdir: query the store a previous run imported there (no generation, no import)",
    )
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="scd-bench-queries-"))
    csvs, home = work / "csv", work / "home"
    reuse = args.reuse and args.workdir is not None and (home / "data" / "databases" / "neo4j").is_dir()
    if args.reuse and not reuse:
        sys.exit(
            "--reuse needs --workdir with a store a previous run imported there; run once without --reuse"
        )
    res: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "cpus": os.cpu_count(),
                 "load_avg_before": os.getloadavg(), "generate_s": 0.0, "import_s": 0.0}  # fmt: skip
    lib = harness_lib()
    if not reuse:
        shutil.rmtree(csvs, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        csvs.mkdir(parents=True)
        t0 = time.perf_counter()
        res["rows"] = generate(csvs, args.circuits, args.nodes, args.edges, args.seed)
        res["generate_s"] = time.perf_counter() - t0
        print(f"generate {args.circuits:,} circuits ({res['rows']['nodes']:,} nodes, {res['rows']['edges']:,} "
              f"edges, {res['rows']['features']:,} features) as CSV: {res['generate_s']:.0f} s", flush=True)  # fmt: skip
        t = time.perf_counter()
        admin_import(lib, home, csvs, args.heap)
        res["import_s"] = time.perf_counter() - t
        print(f"neo4j-admin database import: {res['import_s']:.0f} s", flush=True)
    else:
        print(f"reusing the store imported under {home}", flush=True)
    t = time.perf_counter()
    with serve(lib, home, args.heap, args.pagecache_mb) as uri:
        res["open_s"] = time.perf_counter() - t
        print(f"open the store with Bolt: {res['open_s']:.0f} s ({uri})", flush=True)
        res |= measure(uri, args.runs, node_level=not args.no_node_level)
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
