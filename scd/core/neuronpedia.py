"""Circuits as Neuronpedia / circuit-tracer graph JSON, both ways (pure data: no torch, no database).

The format (what circuit-tracer's create_graph_files writes and Neuronpedia's viewer reads): ``{metadata, qParams, nodes, links}``; a node has ``node_id``, ``feature``,
``layer`` (a string: a number, ``"E"`` for embeddings), ``ctx_idx``, ``feature_type``, ``token_prob``,
``is_target_logit``, ``influence``, ``activation``, ``clerp`` (its label); a link is ``{source, target, weight}``.

Export (:func:`to_graph_json`)
    * rows: each hooked sublayer of the circuit is one viewer row, in forward order (a transcoder circuit has one
      per layer, so its rows are its layers, as in circuit-tracer's own files); logits sit on row ``rows + 1``.
    * ids: features ``{row}_{index}_{pos}``, error nodes ``{row}_-1_{pos}`` (circuit-tracer 0.5.0 writes
      ``0_{layer}_{pos}``, which collides with layer-0 feature ids), embeddings ``E_{token}_{pos}``, logits
      ``{rows + 1}_{token}_{pos}``.
    * feature types: ``cross layer transcoder`` (transcoder latents, what the viewer opens feature details for),
      ``{kind} sae latent`` for SAE latents (resid / attn / mlp; the viewer draws any type as a feature),
      ``{kind} reconstruction error`` for error nodes (``mlp reconstruction error`` for MLP / transcoder errors;
      the viewer treats any type containing "error" as an error node), ``embedding``, ``logit``.
    * ``clerp``: the Feature's label where it has one; ``influence``: circuit-tracer's cumulative influence,
      recomputed from the links (:func:`cumulative_influence`), so it is a function of the file's own graph.
    * every node also carries ``scd`` (the scd Node's fields) and the metadata ``scd`` (circuit, prompt,
      features): :func:`from_graph_json` rebuilds the very same Circuit from them. The viewer ignores both.

Import (:func:`from_graph_json`)
    A file written by scd comes back exactly. Any other graph (circuit-tracer's output for any model) is mapped:
    feature nodes become ``transcoder`` nodes (hook ``blocks.L.ln2.hook_normalized``, index parsed from
    ``{layer}_{index}_{pos}``), error nodes ``error`` (hook ``blocks.L.hook_mlp_out``), embeddings ``token``,
    logits ``logit``; a node's ``attribution`` is its total signed effect on the target logit along the file's
    links (:func:`total_effects`); labels (``clerp``) become Feature labels. A malformed file raises one
    InputError naming the first problem (path in the JSON, what was expected); nothing is returned half-built.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from scd.core.circuit import (
    SCHEMA_VERSION,
    Circuit,
    Edge,
    Feature,
    Node,
    PromptRecord,
    feature_id,
    logit_feature_id,
    token_feature_id,
)
from scd.core.errors import InputError
from scd.core.hooks import hook_sort_key, transcoder_hooks

#: the Node fields an export carries under each node's "scd" key (the import reads them back)
_NODE_FIELDS = ("id", "kind", "layer", "hook", "index", "pos", "token", "attribution", "feature_id")
#: the Circuit fields an export carries under metadata's "scd" key, besides its id
_META_FIELDS = (
    "model", "sae_set", "saes", "params", "prompt", "features", "metric_value", "scores", "created_at",
    "schema_version",
)  # fmt: skip

FEATURE_TYPE_TRANSCODER = "cross layer transcoder"
EMBEDDING, LOGIT = "embedding", "logit"
_FIX = "give a Neuronpedia / circuit-tracer graph JSON (a JSON object with metadata, nodes and links, as circuit-tracer writes)"


# ---------------------------------------------------------------------------------------------------------------
# influence (circuit-tracer's definitions, on a graph given as links)
# ---------------------------------------------------------------------------------------------------------------


def _propagate(ids: list[str], links: list[tuple[str, str, float]], start: dict[str, float], absolute: bool):
    """sum_{n>=1} start @ A^n, where A[target, source] = weight (|weight| row-normalised if `absolute`), computed
    by walking the DAG from the targets back to the sources (A is acyclic; a cycle is an InputError)."""
    into: dict[str, list[tuple[str, float]]] = {i: [] for i in ids}
    for s, t, w in links:
        into[t].append((s, w))
    if absolute:
        for t, lst in into.items():
            total = sum(abs(w) for _, w in lst)
            into[t] = [(s, abs(w) / total if total > 0 else 0.0) for s, w in lst]
    order = _topological(ids, links)  # sources first
    score = {i: 0.0 for i in ids}
    carried = dict.fromkeys(ids, 0.0)
    for i, v in start.items():
        carried[i] += v
    for t in reversed(order):  # targets first: everything flowing into t is known when t is reached
        for s, w in into[t]:
            score[s] += carried[t] * w
            carried[s] += carried[t] * w
    return score


def _topological(ids: list[str], links: list[tuple[str, str, float]]) -> list[str]:
    children: dict[str, list[str]] = {i: [] for i in ids}
    indegree = dict.fromkeys(ids, 0)
    for s, t, _ in links:
        children[s].append(t)
        indegree[t] += 1
    ready = [i for i in ids if indegree[i] == 0]
    order = []
    while ready:
        n = ready.pop()
        order.append(n)
        for c in children[n]:
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    if len(order) != len(ids):
        raise InputError("the graph's links form a cycle", "attribution graphs are acyclic: check the links")
    return order


def total_effects(ids: list[str], links: list[tuple[str, str, float]], target: str) -> dict[str, float]:
    """Signed total effect of every node on `target` along the links: e_target (A + A^2 + ...)."""
    return _propagate(ids, links, {target: 1.0}, absolute=False)


def cumulative_influence(ids: list[str], links: list[tuple[str, str, float]], logit_probs: dict[str, float]):
    """circuit-tracer's node influence (``compute_node_influence``: logit probabilities pushed back through the
    row-normalised |adjacency|), as the cumulative score ``prune_graph`` reports: the share of total influence
    held by nodes at least as influential. Logits carry their own probability's rank."""
    influence = _propagate(ids, links, logit_probs, absolute=True)
    ranked = sorted(ids, key=lambda i: -influence[i])
    total = sum(influence.values()) or 1.0
    out, running = {}, 0.0
    for i in ranked:
        running += influence[i]
        out[i] = running / total
    return out


def error_share(
    ids: list[str],
    links: list[tuple[str, str, float]],
    logit_weights: dict[str, float],
    kinds: dict[str, str],
) -> float:
    """circuit-tracer's ``1 - replacement score`` (``compute_graph_scores``): of the influence reaching the logits
    (weighted by ``logit_weights``) from the input nodes, the share on error nodes (``kinds[id] == "error"``;
    inputs are those and ``"token"`` nodes). Equal to circuit-tracer's when given its unpruned graph and every
    logit's probability (tests/test_tracer.py); scd applies it to stored, pruned graphs with the target weighted 1,
    which gives another number."""
    infl = _propagate(ids, links, logit_weights, absolute=True)
    err = sum(v for i, v in infl.items() if kinds[i] == "error")
    tok = sum(v for i, v in infl.items() if kinds[i] == "token")
    return err / (err + tok) if err + tok > 0 else float("nan")


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------


def _feature_type(kind: str, hook: str) -> str:
    if kind == "transcoder":
        return FEATURE_TYPE_TRANSCODER
    if kind == "token":
        return EMBEDDING
    if kind == "logit":
        return LOGIT
    if kind == "error":
        sub = "mlp" if ("mlp" in hook or "ln2" in hook) else "attn" if "attn" in hook else "resid"
        return f"{sub} reconstruction error"
    return f"{kind} sae latent"


def to_graph_json(circuit: Circuit, slug: str | None = None) -> dict[str, Any]:
    """The circuit as a Neuronpedia graph JSON document (see module docstring)."""
    inner = [n for n in circuit.nodes if n.kind not in ("token", "logit")]
    if any(n.kind == "transcoder" for n in inner) and all(n.kind in ("transcoder", "error") for n in inner):
        # a transcoder circuit: one row per layer (features and that layer's MLP error), as circuit-tracer draws
        row = {n.hook: n.layer for n in inner}
        n_layers = max([n.layer for n in circuit.nodes if n.kind == "logit"] + [n.layer + 1 for n in inner])
        logit_row = n_layers + 1
    else:
        hooks = sorted({n.hook for n in inner}, key=hook_sort_key)
        row = {h: i for i, h in enumerate(hooks)}
        logit_row = len(hooks) + 1
    labels = {f.id: f.label for f in circuit.features}
    np_id: dict[str, str] = {}
    for n in circuit.nodes:
        if n.kind == "token":
            np_id[n.id] = f"E_{n.index}_{n.pos}"
        elif n.kind == "logit":
            np_id[n.id] = f"{logit_row}_{n.index}_{n.pos}"
        else:
            np_id[n.id] = f"{row[n.hook]}_{n.index if n.kind != 'error' else -1}_{n.pos}"
    links = [(np_id[e.source], np_id[e.target], e.weight) for e in circuit.edges]
    ids = list(np_id.values())
    target_logits = [n for n in circuit.nodes if n.kind == "logit"]
    target = next((n for n in target_logits if n.index == circuit.prompt.target_id), None)
    probs = {np_id[n.id]: (circuit.prompt.target_prob if n is target else 0.0) for n in target_logits}
    influence = cumulative_influence(ids, links, probs) if probs and any(probs.values()) else {}
    nodes = []
    for n in circuit.nodes:
        nid = np_id[n.id]
        is_target = n is target
        label = labels.get(n.feature_id) or ""
        if n.kind == "logit":
            prob = circuit.prompt.target_prob if is_target else 0.0
            label = f'Output "{_tok(circuit, n.index)}" (p={prob:.3f})'
        nodes.append(
            {
                "node_id": nid,
                "feature": n.pos if n.kind == "token" else n.index,
                "layer": "E" if n.kind == "token" else str(logit_row if n.kind == "logit" else row[n.hook]),
                "ctx_idx": n.pos,
                "feature_type": _feature_type(n.kind, n.hook),
                "token_prob": circuit.prompt.target_prob if is_target else 0.0,
                "is_target_logit": is_target,
                "run_idx": 0,
                "reverse_ctx_idx": 0,
                "jsNodeId": nid,
                "clerp": label,
                "influence": influence.get(nid),
                "activation": n.activation,
                "scd": {k: getattr(n, k) for k in (*_NODE_FIELDS, "effect")},
            }
        )
    d = circuit.to_dict()
    meta_scd = {k: d[k] for k in ("id", *_META_FIELDS)}
    return {
        "metadata": {
            "slug": slug or circuit.id,
            "scan": circuit.sae_set,
            "transcoder_list": [],
            "prompt_tokens": list(circuit.prompt.tokens),
            "prompt": circuit.prompt.text,
            "node_threshold": circuit.params.get("node_threshold"),
            "schema_version": 1,
            "scd": meta_scd,
        },
        "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
        "nodes": nodes,
        "links": [{"source": s, "target": t, "weight": w} for s, t, w in links],
    }


def graph_json_text(doc: dict[str, Any], indent: int | None = None) -> str:
    """The document as strict JSON text (``allow_nan=False``: JSON has no NaN, and the viewer's JSON.parse refuses
    it), or an InputError naming the first non-finite number."""
    try:
        return json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False)
    except ValueError as e:
        raise InputError(
            f"the graph holds a non-finite number ({e})", "re-create the circuit: scd never stores NaN"
        ) from e


def is_graph_json(doc: Any) -> bool:
    """Whether ``doc`` looks like a graph JSON document (metadata, nodes, links) rather than a circuit JSON."""
    return isinstance(doc, dict) and "links" in doc and "metadata" in doc


def _tok(circuit: Circuit, token_id: int) -> str:
    if token_id == circuit.prompt.target_id:
        return circuit.prompt.target
    for i, t in zip(circuit.prompt.token_ids, circuit.prompt.tokens, strict=False):
        if i == token_id:
            return t
    return str(token_id)


# ---------------------------------------------------------------------------------------------------------------
# import: validation first (one InputError, nothing built), then the mapping
# ---------------------------------------------------------------------------------------------------------------


def _bad(where: str, problem: str) -> InputError:
    return InputError(f"malformed graph JSON at {where}: {problem}", _FIX)


def _need(obj: dict, key: str, types: tuple[type, ...], where: str, optional: bool = False):
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise _bad(f"{where}.{key}", "missing" if key not in obj else "null, expected a value")
    value = obj[key]
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = "/".join(t.__name__ for t in types)
        raise _bad(f"{where}.{key}", f"expected {names}, got {type(value).__name__} {value!r:.40}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(f"{where}.{key}", f"not a finite number ({value})")
    return value


def validate(doc: Any) -> None:
    """Raise one InputError naming the first problem of a graph JSON document, or return None."""
    if not isinstance(doc, dict):
        raise _bad("the top level", f"expected an object, got {type(doc).__name__}")
    meta = _need(doc, "metadata", (dict,), "$")
    nodes = _need(doc, "nodes", (list,), "$")
    links = _need(doc, "links", (list,), "$")
    tokens = _need(meta, "prompt_tokens", (list,), "$.metadata")
    if not all(isinstance(t, str) for t in tokens):
        raise _bad("$.metadata.prompt_tokens", "expected a list of strings")
    _need(meta, "prompt", (str,), "$.metadata")
    seen: set[str] = set()
    first: dict[str, dict] = {}
    n_logits = 0
    for k, n in enumerate(nodes):
        where = f"$.nodes[{k}]"
        if not isinstance(n, dict):
            raise _bad(where, f"expected an object, got {type(n).__name__}")
        nid = _need(n, "node_id", (str,), where)
        ftype = _need(n, "feature_type", (str,), where)
        if nid in seen and not _shared_ok(first[nid], n):
            raise _bad(f"{where}.node_id", f"duplicate node id {nid!r} (node ids must be unique)")
        seen.add(nid)
        first.setdefault(nid, n)
        _need(n, "layer", (str, int), where)
        ctx = _need(n, "ctx_idx", (int,), where)
        if not 0 <= ctx < max(1, len(tokens)):
            raise _bad(f"{where}.ctx_idx", f"{ctx} is outside the prompt's {len(tokens)} tokens")
        _need(n, "feature", (int,), where, optional=ftype == EMBEDDING)
        for key in ("token_prob", "influence", "activation"):
            _need(n, key, (int, float), where, optional=True)
        _need(n, "is_target_logit", (bool,), where, optional=True)
        _need(n, "clerp", (str,), where, optional=True)
        if ftype not in (EMBEDDING, LOGIT) and "error" not in ftype:
            try:
                int(str(n["layer"]))
            except ValueError:
                raise _bad(
                    f"{where}.layer", f"a feature's layer must be a number, got {n['layer']!r}"
                ) from None
        n_logits += ftype == LOGIT
    if n_logits == 0:
        raise _bad("$.nodes", "no logit node: a graph explains a logit")
    for k, link in enumerate(links):
        where = f"$.links[{k}]"
        if not isinstance(link, dict):
            raise _bad(where, f"expected an object, got {type(link).__name__}")
        for key in ("source", "target"):
            ref = _need(link, key, (str,), where)
            if ref not in seen:
                raise _bad(f"{where}.{key}", f"links to unknown node {ref!r}")
        _need(link, "weight", (int, float), where)


def _role(n: dict) -> str:
    ftype = n["feature_type"]
    return "other" if ftype in (EMBEDDING, LOGIT) else "error" if "error" in ftype else "feature"


def _shared_ok(a: dict, b: dict) -> bool:
    """Two nodes may share a node_id only as circuit-tracer 0.5.0 writes them: an error node ``0_{layer}_{pos}``
    and a layer-0 feature ``0_{index}_{pos}``, told apart by feature_type and jsNodeId."""
    return (
        isinstance(a.get("feature_type"), str)
        and {_role(a), _role(b)} == {"feature", "error"}
        and a.get("jsNodeId") != b.get("jsNodeId")
    )


def _link_ends(doc: dict, scd_id: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """The scd node ids at both ends of each link. ``scd_id[node_id]`` maps a role (feature / error / other) to
    the scd id; two roles where circuit-tracer 0.5.0 gave an error node and a layer-0 feature one id (links name
    only the id). Such a link is resolved by what circuit-tracer's create_used_nodes_and_edges guarantees: an
    error node has no incoming links, and the links into one target come in the order of the adjacency's columns
    -- features, then error nodes, then embeddings. So of two links from a shared id into one target the first is
    the feature's and the second the error's; a lone one is the error's where a link from another error node
    comes before it, the feature's where a link from another feature comes after it, and otherwise ambiguous
    (an InputError: nothing in the file says which node it leaves)."""

    def single(ref: str) -> str | None:
        roles = scd_id[ref]
        return next(iter(roles.values())) if len(roles) == 1 else None

    links = doc["links"]
    ends: list[tuple[str, str] | None] = [None] * len(links)
    by_target: dict[str, list[int]] = {}
    for k, lk in enumerate(links):
        by_target.setdefault(lk["target"], []).append(k)
    for target, group in by_target.items():
        dst = single(target) or scd_id[target]["feature"]  # error nodes have no incoming links
        shared = [k for k in group if single(links[k]["source"]) is None]
        for k in group:
            src = single(links[k]["source"])
            if src is not None:
                ends[k] = (src, dst)
        for k in shared:
            ref = links[k]["source"]
            same = [j for j in shared if links[j]["source"] == ref]
            if len(same) == 2:
                role = "feature" if k == same[0] else "error"
            elif len(same) == 1:
                at = group.index(k)
                roles_before = {_role_of(scd_id, links[j]["source"]) for j in group[:at]}
                roles_after = {_role_of(scd_id, links[j]["source"]) for j in group[at + 1 :]}
                if "error" in roles_before:
                    role = "error"
                elif "feature" in roles_after:
                    role = "feature"
                else:
                    raise _bad(
                        f"$.links[{k}].source",
                        f"{ref!r} names both a feature and an error node, and nothing tells which this link leaves",
                    )
            else:
                raise _bad(f"$.links[{k}]", f"more than two links from {ref!r} to {target!r}")
            ends[k] = (scd_id[ref][role], dst)
    return [e for e in ends if e is not None]


def _role_of(scd_id: dict[str, dict[str, str]], ref: str) -> str:
    roles = scd_id[ref]
    return next(iter(roles)) if len(roles) == 1 else "shared"


_NODE_ID = re.compile(r"^(-?\d+|E)_(-?\d+)_(\d+)$")


def from_graph_json(doc: Any, *, model: str | None = None, sae_set: str | None = None) -> Circuit:
    """A Circuit from a graph JSON document (validated first; see module docstring). ``model`` / ``sae_set`` name
    a foreign graph's model and dictionaries in Feature ids (default: the file's ``scan``)."""
    validate(doc)
    meta = doc["metadata"]
    if _is_scd(doc):
        return _from_scd(doc)
    scan = str(meta.get("scan") or "imported")
    model = model or scan
    sae_set = sae_set or scan
    tokens = list(meta["prompt_tokens"])
    n_pos = len(tokens)
    nodes_in = doc["nodes"]
    logits = [n for n in nodes_in if n["feature_type"] == LOGIT]
    target = next((n for n in logits if n.get("is_target_logit")), None) or max(
        logits, key=lambda n: n.get("token_prob") or 0.0
    )
    token_ids = [-1] * n_pos
    for n in nodes_in:
        if n["feature_type"] == EMBEDDING:
            m = _NODE_ID.match(n["node_id"])
            token_ids[n["ctx_idx"]] = int(m.group(2)) if m else -1
    n_layers = max([int(str(n["layer"])) - 1 for n in logits] + [0])
    scd_id: dict[str, dict[str, str]] = {}  # node_id -> role -> scd id (two roles: see _link_ends)
    taken: set[str] = set()
    nodes: list[Node] = []
    for n in nodes_in:
        ftype, pos = n["feature_type"], n["ctx_idx"]
        m = _NODE_ID.match(n["node_id"])
        if ftype == EMBEDDING:
            index = token_ids[pos]
            node = Node(
                f"token/{index}@{pos}",
                "token",
                -1,
                "hook_embed",
                index,
                pos,
                tokens[pos],
                1.0,
                0.0,
                token_feature_id(model, index),
            )
        elif ftype == LOGIT:
            index = int(n["feature"])
            node = Node(
                f"logit/{index}@{pos}",
                "logit",
                n_layers,
                "unembed",
                index,
                pos,
                tokens[pos],
                float(n.get("activation") or 0.0),
                0.0,
                logit_feature_id(model, index),
            )
        elif "error" in ftype:
            layer = _error_layer(n, m)
            hook = transcoder_hooks(layer)[1]
            node = Node(
                f"{hook}/error@{pos}",
                "error",
                layer,
                hook,
                -1,
                pos,
                tokens[pos],
                0.0,
                0.0,
                feature_id(model, sae_set, hook, -1),
            )
        else:
            layer = int(str(n["layer"]))
            index = int(m.group(2)) if m else int(n["feature"])
            hook = transcoder_hooks(layer)[0]
            node = Node(
                f"{hook}/{index}@{pos}",
                "transcoder",
                layer,
                hook,
                index,
                pos,
                tokens[pos],
                float(n.get("activation") or 0.0),
                0.0,
                feature_id(model, sae_set, hook, index),
            )
        if node.id in taken:
            raise _bad(f"node {n['node_id']!r}", f"maps onto the same scd node as another ({node.id})")
        taken.add(node.id)
        scd_id.setdefault(n["node_id"], {})[_role(n)] = node.id
        nodes.append(node)
    edges = [
        Edge(s, t, float(lk["weight"]))
        for (s, t), lk in zip(_link_ends(doc, scd_id), doc["links"], strict=True)
    ]
    ids = [x.id for x in nodes]
    target_id = scd_id[target["node_id"]]["other"]
    effects = total_effects(ids, [(e.source, e.target, e.weight) for e in edges], target_id)
    for node in nodes:
        node.attribution = node.activation if node.id == target_id else effects[node.id]
    features = _features(nodes_in, nodes, model, sae_set)
    prob = float(target.get("token_prob") or 0.0)
    top = sorted(logits, key=lambda n: -(n.get("token_prob") or 0.0))[:5]
    prompt = PromptRecord(
        text=meta["prompt"],
        tokens=tokens,
        token_ids=token_ids,
        target=_logit_token(target),
        target_id=int(target["feature"]),
        target_prob=prob,
        loss=-math.log(prob) if prob > 0 else 1e9,
        top_completions=[(_logit_token(n), float(n.get("token_prob") or 0.0)) for n in top],
        target_source="imported",
    )
    digest = hashlib.sha1(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return Circuit(
        prompt=prompt,
        model=model,
        sae_set=sae_set,
        saes={},
        nodes=nodes,
        edges=edges,
        features=features,
        params={
            "method": "imported",
            "source": "neuronpedia-json",
            "slug": meta.get("slug"),
            "node_threshold": meta.get("node_threshold"),
            "file_sha1": digest,
        },
        metric_value=float(target.get("activation") or 0.0),
    )


def _error_layer(n: dict, m: re.Match | None) -> int:
    try:
        return int(str(n["layer"]))
    except ValueError:
        return int(m.group(2)) if m else 0


def _logit_token(n: dict) -> str:
    m = re.match(r'^Output "(.*)" \(p=', n.get("clerp") or "", re.S)
    return m.group(1) if m else str(n["feature"])


def _features(nodes_in: list[dict], nodes: list[Node], model: str, sae_set: str) -> list[Feature]:
    out: dict[str, Feature] = {}
    for raw, n in zip(nodes_in, nodes, strict=True):
        if n.feature_id in out:
            continue
        label = raw.get("clerp") or None
        if n.kind == "logit":
            label = f"logit of {_logit_token(raw)!r}"
        out[n.feature_id] = Feature(
            id=n.feature_id,
            model=model,
            sae=sae_set if n.kind in ("transcoder", "error") else "",
            hook=n.hook,
            layer=n.layer,
            kind=n.kind,
            index=n.index,
            label=label,
        )
    return list(out.values())


def _is_scd(doc: dict) -> bool:
    meta = doc["metadata"].get("scd")
    return isinstance(meta, dict) and all(isinstance(n.get("scd"), dict) for n in doc["nodes"])


_NUM = (int, float)
#: the types of the scd fields a file scd wrote carries (checked before anything is built from them)
_NODE_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "kind": (str,), "layer": (int,), "hook": (str,), "index": (int,), "pos": (int,),
    "token": (str,), "attribution": _NUM, "feature_id": (str,),
}  # fmt: skip
_META_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "sae_set": (str,), "saes": (dict,), "params": (dict,), "prompt": (dict,),
    "features": (list,), "metric_value": _NUM, "scores": (dict,), "created_at": (str,), "schema_version": (int,),
}  # fmt: skip
_PROMPT_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,), "tokens": (list,), "token_ids": (list,), "target": (str,), "target_id": (int,),
    "target_prob": _NUM, "loss": _NUM, "top_completions": (list,), "target_source": (str,),
}  # fmt: skip
_FEATURE_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "model": (str,), "sae": (str,), "hook": (str,), "layer": (int,), "kind": (str,),
    "index": (int,), "top_promoted": (list,), "top_promoted_logits": (list,), "top_suppressed": (list,),
    "top_suppressed_logits": (list,),
}  # fmt: skip


def _check_scd(doc: dict) -> None:
    """One InputError at the path of the first scd field that is missing or of the wrong type."""
    meta = doc["metadata"]["scd"]
    for key, types in _META_TYPES.items():
        _need(meta, key, types, "$.metadata.scd")
    for key, types in _PROMPT_TYPES.items():
        _need(meta["prompt"], key, types, "$.metadata.scd.prompt")
    _need(meta["prompt"], "contrast", (str,), "$.metadata.scd.prompt", optional=True)
    for k, f in enumerate(meta["features"]):
        where = f"$.metadata.scd.features[{k}]"
        if not isinstance(f, dict):
            raise _bad(where, f"expected an object, got {type(f).__name__}")
        for key, types in _FEATURE_TYPES.items():
            _need(f, key, types, where)
        for key in ("neuronpedia_url", "label"):
            _need(f, key, (str,), where, optional=True)
        extra = set(f) - set(_FEATURE_TYPES) - {"neuronpedia_url", "label"}
        if extra:
            raise _bad(f"{where}.{sorted(extra)[0]}", "not a Feature field")
    for k, n in enumerate(doc["nodes"]):
        for key, types in _NODE_TYPES.items():
            _need(n["scd"], key, types, f"$.nodes[{k}].scd")
        _need(n, "activation", _NUM, f"$.nodes[{k}]")


def _from_scd(doc: dict) -> Circuit:
    """A file scd wrote: the Circuit from the ``scd`` fields (checked first), weights from the links."""
    _check_scd(doc)
    meta = doc["metadata"]["scd"]
    ids = {n["node_id"]: n["scd"]["id"] for n in doc["nodes"]}
    if len(ids) != len(doc["nodes"]):
        raise _bad("$.nodes", "duplicate node ids in a file scd wrote (scd never writes them)")
    nodes = [
        Node(
            **{k: n["scd"][k] for k in _NODE_FIELDS},
            activation=float(n["activation"]),
            effect=n["scd"].get("effect"),  # absent from files written before scd measured it
        )
        for n in doc["nodes"]
    ]
    d = {k: meta[k] for k in _META_FIELDS}
    if d["schema_version"] != SCHEMA_VERSION:
        raise _bad(
            "$.metadata.scd.schema_version", f"{d['schema_version']!r}; this scd reads {SCHEMA_VERSION}"
        )
    d["nodes"] = []
    d["edges"] = []
    try:
        circuit = Circuit.from_dict(d)
    except (KeyError, TypeError, ValueError) as e:  # a prompt field the checks above do not name
        raise _bad("$.metadata.scd.prompt", f"not a circuit's prompt record ({type(e).__name__}: {e})") from e
    circuit.nodes = nodes
    circuit.edges = [Edge(ids[lk["source"]], ids[lk["target"]], float(lk["weight"])) for lk in doc["links"]]
    return circuit
