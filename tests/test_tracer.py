"""Transcoder / CLT circuits are delegated to circuit-tracer: check that the mapping into a Circuit loses nothing,
that the shipped transcoders load through circuit-tracer's own loaders, and that a graph JSON circuit-tracer itself
writes comes into the store intact."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("circuit_tracer")

from scd.core.errors import InputError  # noqa: E402
from scd.core.neuronpedia import from_graph_json  # noqa: E402
from scd.discovery import tracer  # noqa: E402

PROMPTS = ["Copyright (C", "f(a [b (c", "x = [1, 2, [3, 4"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["demo-plt", "demo-clt"])
def loaded(request):
    torch.set_num_threads(1)
    return tracer.load("demo", request.param)


def _expected_nodes(graph, pruned):
    """Every node of circuit-tracer's pruned graph, described from the Graph's own tensors (its index layout)."""
    n_pos, n_layers = len(graph.input_tokens), graph.cfg.n_layers
    n_feat = len(graph.selected_features)
    err_end, tok_end = n_feat + n_layers * n_pos, n_feat + (n_layers + 1) * n_pos
    out = {}
    for k in pruned.node_mask.nonzero().flatten().tolist():
        if k < n_feat:
            layer, pos, idx = graph.active_features[graph.selected_features[k]].tolist()
            act = float(graph.activation_values[graph.selected_features[k]])
            out[k] = ("transcoder", layer, pos, idx, act)
        elif k < err_end:
            layer, pos = divmod(k - n_feat, n_pos)
            out[k] = ("error", layer, pos, -1, None)
        elif k < tok_end:
            pos = k - err_end
            out[k] = ("token", -1, pos, int(graph.input_tokens[pos]), None)
        else:
            out[k] = ("logit", n_layers, n_pos - 1, int(graph.logit_targets[k - tok_end].vocab_idx), None)
    return out


@pytest.mark.parametrize("prompt", PROMPTS)
def test_mapping_loses_nothing(loaded, prompt):
    circuit = tracer.trace(prompt, model=loaded, keep_graph=True)
    graph, pruned = circuit.tracer_graph, circuit.tracer_prune
    expected = _expected_nodes(graph, pruned)
    by_key = {(n.kind, n.layer, n.pos, n.index): n for n in circuit.nodes}
    assert len(circuit.nodes) == len(expected) and len(by_key) == len(expected)
    k_to_id = {}
    for k, (kind, layer, pos, idx, act) in expected.items():
        node = by_key[(kind, layer, pos, idx)]
        if act is not None:
            assert node.activation == pytest.approx(act, rel=1e-6, abs=1e-9)
        k_to_id[k] = node.id
    edges = {(e.source, e.target): e.weight for e in circuit.edges}
    dst, src = pruned.edge_mask.nonzero(as_tuple=True)
    want = {
        (k_to_id[s], k_to_id[d]): float(graph.adjacency_matrix[d, s])
        for d, s in zip(dst.tolist(), src.tolist(), strict=True)
        if s in k_to_id and d in k_to_id
    }
    assert want, "circuit-tracer kept no edge: the check would be empty"
    assert edges.keys() == want.keys()
    for key, w in want.items():
        assert edges[key] == pytest.approx(w, rel=1e-6, abs=1e-9)
    assert {n.kind for n in circuit.nodes} >= {"transcoder", "token", "logit"}
    assert circuit.prompt.target_id == int(graph.logit_targets[0].vocab_idx)


def test_node_attribution_is_total_effect_on_logit(loaded):
    """Independent of the mapping: in circuit-tracer's linear replacement model, every path into the logit starts
    at a token or error node, so their total effects add up to the logit's total input from all nodes (the rest is
    biases, which no node carries). Check it with the full adjacency solved as (I - A)^-1."""
    circuit = tracer.trace(PROMPTS[0], model=loaded, keep_graph=True)
    a = circuit.tracer_graph.adjacency_matrix.double()
    n = a.shape[0]
    total = torch.linalg.solve(torch.eye(n, dtype=torch.float64) - a.T, a[-1])  # e_logit (A + A^2 + ...)
    mine = {node.id: node.attribution for node in circuit.nodes if node.kind not in ("logit",)}
    for k, node_id in _ids(circuit).items():
        if node_id in mine:
            assert mine[node_id] == pytest.approx(float(total[k]), rel=1e-5, abs=1e-6)


def _ids(circuit):
    graph = circuit.tracer_graph
    n_pos, n_layers = len(graph.input_tokens), graph.cfg.n_layers
    n_feat = len(graph.selected_features)
    out = {}
    by_key = {(n.kind, n.layer, n.pos, n.index): n.id for n in circuit.nodes}
    for k, (kind, layer, pos, idx, _) in _expected_nodes(graph, circuit.tracer_prune).items():
        out[k] = by_key[(kind, layer, pos, idx)]
    assert n_feat + (n_layers + 1) * n_pos <= graph.adjacency_matrix.shape[0]
    return out


CROSS_CHECK_PROMPTS = [*PROMPTS, "print(len(x", "the cost (in dollars"]


@pytest.mark.parametrize("prompt", CROSS_CHECK_PROMPTS)
def test_scd_pruning_keeps_what_prune_graph_keeps(loaded, prompt):
    """Same graph, same thresholds: scd's influence pruning (scd.discovery.selection, over a Circuit's edges) keeps
    exactly the nodes circuit-tracer's prune_graph keeps. The graph is circuit-tracer's whole graph (every node,
    every nonzero adjacency entry), mapped into a Circuit."""
    from types import SimpleNamespace

    from circuit_tracer.graph import prune_graph

    from scd.discovery.selection import prune_by_influence

    traced = tracer.trace(prompt, model=loaded, keep_graph=True)
    graph = traced.tracer_graph
    adjacency = graph.adjacency_matrix
    everything = SimpleNamespace(
        node_mask=torch.ones(adjacency.shape[0], dtype=torch.bool), edge_mask=adjacency != 0
    )
    ids = traced.prompt.token_ids
    with torch.no_grad():
        logits = loaded.model(torch.tensor([ids]))[0, -1]
    whole = tracer.to_circuit(graph, everything, loaded, ids, logits, traced.prompt.target_id, traced.params)
    whole.tracer_graph, whole.tracer_prune = graph, everything  # type: ignore[attr-defined]
    assert len(whole.nodes) == adjacency.shape[0] and len(whole.edges) == int((adjacency != 0).sum())
    ids = _ids(whole)
    assert {n.id for n in traced.nodes} == {
        ids[k] for k in traced.tracer_prune.node_mask.nonzero().flatten().tolist()
    }
    for node_t, edge_t in ((0.8, 0.98), (0.5, 0.9), (0.95, 0.99)):
        reference = prune_graph(graph, node_threshold=node_t, edge_threshold=edge_t)
        want = {ids[k] for k in reference.node_mask.nonzero().flatten().tolist()}
        mine = prune_by_influence(whole, node_t, edge_t)
        assert 0 < len(want) < len(whole.nodes)
        assert {n.id for n in mine.nodes} == want, (node_t, edge_t)
        assert mine.params["selection"] == f"influence:{node_t:g}/{edge_t:g}"


def test_shipped_transcoders_reconstruct(loaded):
    """The shipped weights, loaded by circuit-tracer's loaders, predict the MLP outputs (FVU per layer), on text
    they were not trained on."""
    import scd.demo as demo
    from scd.demo.transcoders import measure

    model, tok = demo.load_model(), demo.load_tokenizer()
    m = measure(loaded.model.transcoders, model, tok, seed=5, n_texts=32)
    assert all(f < 0.2 for f in m["fvu"]), m
    assert all(5 < l0 < 60 for l0 in m["l0"]), m
    assert m["top1_agreement"] > 0.5, m


def test_real_circuit_tracer_json_imports(loaded, tmp_path):
    """A graph JSON written by circuit-tracer's own create_graph_files pieces (its AutoTokenizer lookup cannot run
    offline, so the three functions it calls are called with the demo tokenizer) imports into the embedded store
    with every node and link, and a named query reads it."""
    from circuit_tracer.utils.create_graph_files import build_model, create_nodes, create_used_nodes_and_edges

    from scd.core.config import StoreConfig
    from scd.queries.runner import query
    from scd.store import open_store

    circuit = tracer.trace(PROMPTS[0], model=loaded, keep_graph=True)
    graph, pruned = circuit.tracer_graph, circuit.tracer_prune
    tok = loaded.model.tokenizer
    nodes = create_nodes(graph, pruned.node_mask, tok, pruned.cumulative_scores)
    used_nodes, used_edges = create_used_nodes_and_edges(graph, nodes, pruned.edge_mask)
    doc = json.loads(build_model(graph, used_nodes, used_edges, "t", graph.scan, 0.8, tok).model_dump_json())
    imported = from_graph_json(doc, model="demo", sae_set=loaded.sae_set)
    assert len(imported.nodes) == len(doc["nodes"]) and len(imported.edges) == len(doc["links"])
    ours = {(e.source, e.target): e.weight for e in circuit.edges}
    for e in imported.edges:  # same node ids as scd's own trace, same weights
        assert ours[(e.source, e.target)] == pytest.approx(e.weight, rel=1e-6)
    cfg = StoreConfig.resolve(None, tmp_path / "store")
    with open_store(cfg) as s:
        assert s.write_circuit(imported)
    # the named query reads it back: every stored edge with its weight
    df = query("circuit", cfg, prompt=imported.id, limit=100000)
    assert len(df) == len(imported.edges)
    stored = {(r.source, r.target): r.weight for r in df.itertuples()}
    assert stored == pytest.approx({(e.source, e.target): e.weight for e in imported.edges})


def test_circuit_tracer_json_with_colliding_ids_imports(tmp_path):
    """circuit-tracer 0.5.0 names error nodes 0_{layer}_{pos}, which is also the id of a layer-0 feature: on "f(x"
    with demo-plt its own builders write two nodes 0_0_2 (a feature and an error node). The import keeps both and
    gives every link to the right one: each imported edge has the weight of that edge in scd's own trace (read
    from circuit-tracer's adjacency matrix, not from the file)."""
    from circuit_tracer.utils.create_graph_files import build_model, create_nodes, create_used_nodes_and_edges

    loaded = tracer.load("demo", "demo-plt")
    circuit = tracer.trace("f(x", model=loaded, keep_graph=True)
    graph, pruned = circuit.tracer_graph, circuit.tracer_prune
    tok = loaded.model.tokenizer
    nodes = create_nodes(graph, pruned.node_mask, tok, pruned.cumulative_scores)
    used_nodes, used_edges = create_used_nodes_and_edges(graph, nodes, pruned.edge_mask)
    doc = json.loads(build_model(graph, used_nodes, used_edges, "t", graph.scan, 0.8, tok).model_dump_json())
    ids = [n["node_id"] for n in doc["nodes"]]
    shared = {i for i in ids if ids.count(i) > 1}
    assert shared, "circuit-tracer no longer writes colliding ids on this prompt: the test needs another"
    imported = from_graph_json(doc, model="demo", sae_set=loaded.sae_set)
    assert len(imported.nodes) == len(doc["nodes"]) and len(imported.edges) == len(doc["links"])
    ours = {(e.source, e.target): e.weight for e in circuit.edges}
    got = {(e.source, e.target): e.weight for e in imported.edges}
    assert len(got) == len(imported.edges)
    assert got == pytest.approx({k: ours[k] for k in got}, rel=1e-6)
    assert any(n.kind == "error" and n.layer == 0 for n in imported.nodes)
    # a true duplicate (same type twice) is still refused
    bad = json.loads(json.dumps(doc))
    twin = next(n for n in bad["nodes"] if n["node_id"] in shared and "error" in n["feature_type"])
    twin["feature_type"] = "cross layer transcoder"
    with pytest.raises(InputError, match="duplicate node id"):
        from_graph_json(bad)


def test_error_share_is_circuit_tracers_replacement_score(loaded):
    """scd.core.neuronpedia.error_share on circuit-tracer's unpruned graph, every logit weighted by its
    probability, is 1 - circuit-tracer's own compute_graph_scores replacement score."""
    from circuit_tracer.graph import compute_graph_scores

    from scd.core.neuronpedia import error_share

    graph = tracer.trace(PROMPTS[0], model=loaded, keep_graph=True).tracer_graph
    adj = graph.adjacency_matrix.double().cpu()
    n_feat, n_tok = len(graph.selected_features), len(graph.input_tokens)
    n_err = n_tok * graph.cfg.n_layers
    n = adj.shape[0]
    ids = [str(i) for i in range(n)]
    kinds = {str(i): "feature" for i in range(n)}
    kinds.update({str(i): "error" for i in range(n_feat, n_feat + n_err)})
    kinds.update({str(i): "token" for i in range(n_feat + n_err, n_feat + n_err + n_tok)})
    dst, src = adj.nonzero(as_tuple=True)
    links = [(str(s), str(d), float(adj[d, s])) for d, s in zip(dst.tolist(), src.tolist(), strict=True)]
    probs = graph.logit_probabilities.double().cpu().tolist()
    weights = {str(n - len(probs) + k): p for k, p in enumerate(probs)}
    replacement, _ = compute_graph_scores(graph)
    assert error_share(ids, links, weights, kinds) == pytest.approx(1 - float(replacement), rel=1e-4)
