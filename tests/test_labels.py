"""Feature cards: a planted latent whose activation is known by construction gets the expected top contexts,
frequency, maximum and label; cards are stored on Features and read back by the `feature` query."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from scd.discovery.labels import auto_label, feature_cards, innermost_open

from .tiny_models import random_saes, tiny_model

HOOK = "blocks.0.hook_resid_pre"
PLANTED = 3  # latent index
TOKEN = 5  # the token it detects


def _bundle():
    model = tiny_model(n_layers=1)
    saes = random_saes(model, [HOOK])
    sae = saes[HOOK]
    with (
        torch.no_grad()
    ):  # latent PLANTED = relu(<x - b_dec, e> - 0.5 * <W_E[5] - b_dec, e>), e = W_E[5] unit
        e = model.W_E[TOKEN] / model.W_E[TOKEN].norm()
        sae.W_enc[:, PLANTED] = e
        sae.b_enc[PLANTED] = -0.5 * float((model.W_E[TOKEN] - sae.b_dec) @ e)
    tok = SimpleNamespace(
        bos_id=None, encode=lambda t: [int(c) for c in t.split()], token_str=lambda i: f"{i} "
    )
    return SimpleNamespace(
        name="tiny",
        sae_set="rand",
        model=model,
        saes=saes,
        tokenizer=tok,
        device=torch.device("cpu"),
        n_ctx=model.cfg.n_ctx,
    )


def test_a_planted_latent_gets_its_known_top_contexts():
    bundle = _bundle()
    gen = torch.Generator().manual_seed(1)
    texts = [" ".join(str(int(t)) for t in torch.randint(0, 20, (10,), generator=gen)) for _ in range(12)]
    cards = {c.index: c for c in feature_cards(bundle, texts, top=5) if c.hook == HOOK}
    card = cards[PLANTED]
    # the activation by hand: hook_resid_pre of block 0 is W_E[token] + W_pos[position]
    model, sae = bundle.model, bundle.saes[HOOK]
    expected = []
    for t, text in enumerate(texts):
        for p, token in enumerate(int(c) for c in text.split()):
            x = model.W_E[token] + model.W_pos[p]
            a = float(torch.relu((x - sae.b_dec) @ sae.W_enc[:, PLANTED] + sae.b_enc[PLANTED]))
            expected.append((a, t, p, token))
    firing = [x for x in expected if x[0] > 0]
    assert firing and all(tok == TOKEN for _, _, _, tok in firing), "the plant detects token 5 only"
    best = sorted(firing, key=lambda x: (-x[0], x[1], x[2]))[:5]
    assert card.top_activations == pytest.approx([a for a, *_ in best], rel=1e-5)
    assert [c.endswith(f"[{TOKEN} ]") for c in card.top_contexts] == [True] * len(best)
    for ctx, (_, t, p, _) in zip(card.top_contexts, best, strict=True):
        assert ctx == "".join(f"{c} " for c in texts[t].split()[:p])[-24:] + f"[{TOKEN} ]"
    assert card.frequency == pytest.approx(len(firing) / len(expected), abs=1e-6)
    assert card.max_activation == pytest.approx(best[0][0], rel=1e-5)
    # selectivity over every firing, not only the top contexts: all on token 5, against its share of positions
    base = sum(tok == TOKEN for *_, tok in expected) / len(expected)
    assert card.label.startswith(f"fires on '{TOKEN} ' (100% of firings, base {base:.0%})")


def test_labels_name_the_shared_bracket_and_the_promoted_token():
    assert innermost_open("f(a [b] (c") == "("
    assert innermost_open("x [1, (2)") == "["
    assert innermost_open("a (b)") is None
    label = auto_label(["a", "b", "c", "d"], ["f(a", "(b", "x [y (c", "((d"], [")", "]"], 0.1)
    assert label == "fires inside an open '('; promotes ')'"
    assert auto_label(["a", "b"], ["a", "b"], ["x"], 0.1) == "no common context; promotes 'x'"
    assert auto_label([], [], ["x"], 0.0) == "never fires on the reference text"
    rates = {("open", "("): (0.46, 0.25)}
    label = auto_label(
        ["a", "b", "c", "d"], ["f(a", "(b", "x [y (c", "((d"], [")"], 0.1, lambda w, v: rates[(w, v)]
    )
    assert label == "fires inside an open '(' (46% of firings, base 25%); promotes ')'"
    rates[("open", "(")] = (0.30, 0.25)  # the top contexts share it, its firings overall hardly (lift 1.2)
    label = auto_label(
        ["a", "b", "c", "d"], ["f(a", "(b", "x [y (c", "((d"], [")"], 0.1, lambda w, v: rates[(w, v)]
    )
    assert label == "no selective context; promotes ')'"


@pytest.mark.parametrize("which", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_cards_are_stored_and_read_back(which, request, tmp_path):
    from scd.core.config import StoreConfig
    from scd.queries import runner
    from scd.store import open_store

    from .synthetic import synthetic_circuit

    c = synthetic_circuit(3)
    f = next(x for x in c.features if x.kind == "resid")
    config = (
        StoreConfig(neo4j_uri=request.getfixturevalue("neo4j_uri"))
        if which == "neo4j"
        else StoreConfig(path=tmp_path / "s")
    )
    row = {
        "id": f.id,
        "label": "fires on 'x'; promotes ')'",
        "frequency": 0.25,
        "max_activation": 3.5,
        "top_contexts": ["ab [x]", "cd [x]"],
        "top_activations": [3.5, 2.0],
    }
    with open_store(config) as store:
        store.clear()
        store.write_circuit(c)
        assert store.set_feature_cards([row, row | {"id": "not/stored"}]) == 1
        df = runner.run(store, "feature", {"id": f.id})
    r = df.iloc[0]
    assert (r.label, r.frequency, r.max_activation) == (row["label"], 0.25, 3.5)
    assert list(r.top_contexts) == row["top_contexts"] and list(r.top_activations) == [3.5, 2.0]
    assert r.circuits == 1


def test_every_latent_gets_a_feature_record():
    """latent_features: one Feature per latent of every SAE, with the metadata a circuit would give it (kind, layer,
    the top promoted token of its direct logit effect, recomputed here from the decoder row)."""
    from scd.core.circuit import feature_id
    from scd.discovery.labels import latent_features

    bundle = _bundle()
    bundle.sae_ids, bundle.neuronpedia = {HOOK: "rand/0"}, lambda hook, i: None
    features = latent_features(bundle)
    d_sae = bundle.saes[HOOK].W_dec.shape[0]
    assert [f.id for f in features] == [feature_id("tiny", "rand", HOOK, j) for j in range(d_sae)]
    assert {(f.kind, f.layer, f.sae) for f in features} == {("resid", 0, "rand/0")}
    model = bundle.model
    for f in features[:8]:
        v = bundle.saes[HOOK].W_dec[f.index].detach()
        if model.cfg.normalization_type in ("LN", "LNPre"):
            v = v - v.mean()
        if getattr(model.ln_final, "w", None) is not None:
            v = v * model.ln_final.w
        assert f.top_promoted[0] == bundle.tokenizer.token_str(int((v @ model.W_U).argmax()))


@pytest.mark.parametrize("which", ["embedded", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_cards_create_the_features_no_circuit_stored(which, request, tmp_path):
    """set_feature_cards with Feature rows: a latent no circuit used gets a Feature and its card; a stored Feature
    keeps the metadata its circuit wrote and gets its card."""
    from dataclasses import replace

    from scd.core.config import StoreConfig
    from scd.queries import runner
    from scd.store import open_store
    from scd.store.rows import feature_row

    from .synthetic import synthetic_circuit

    c = synthetic_circuit(3)
    stored = next(x for x in c.features if x.kind == "resid")
    new = replace(stored, id=stored.id.rsplit("/", 1)[0] + "/100000", index=100000, top_promoted=["q", "r"])
    config = (
        StoreConfig(neo4j_uri=request.getfixturevalue("neo4j_uri"))
        if which == "neo4j"
        else StoreConfig(path=tmp_path / "s")
    )
    card = {
        "label": "l",
        "frequency": 0.5,
        "max_activation": 1.0,
        "top_contexts": ["[x]"],
        "top_activations": [1.0],
    }
    features = [feature_row(replace(stored, top_promoted=["changed"])), feature_row(new)]
    with open_store(config) as store:
        store.clear()
        store.write_circuit(c)
        assert store.set_feature_cards([card | {"id": stored.id}, card | {"id": new.id}], features) == 2
        old_card = runner.run(store, "feature", {"id": stored.id}).iloc[0]
        new_card = runner.run(store, "feature", {"id": new.id}).iloc[0]
    assert (
        list(old_card.promotes) == stored.top_promoted[:5]
        and old_card.label == "l"
        and old_card.circuits == 1
    )
    assert list(new_card.promotes) == ["q", "r"] and new_card.label == "l" and new_card.circuits == 0
    assert (new_card.kind, new_card.layer) == (stored.kind, stored.layer)
