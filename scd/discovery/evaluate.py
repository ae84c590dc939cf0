"""How much of the model's behaviour a circuit explains: faithfulness and completeness by ablation.

Marks et al. (2024), https://arxiv.org/abs/2403.19647. With m the circuit's metric, M the whole model and C the circuit's
nodes, each m(.) is one forward pass in which every SAE latent (and error term) *not* in the given set is ablated
at every SAE sublayer and position; the others keep the values they take in that ablated run, as in Marks' code:

    faithfulness  F(C) = (m(C) - m(empty)) / (m(M) - m(empty))        1 = the circuit alone reproduces the model
    completeness       = 1 - F(M minus C)                             1 = without the circuit nothing is left

Choices, stated once:

* **What is ablated:** only what the circuit leaves out of M, the nodes active in the clean run (every active
  latent, every error term). A latent inactive in the clean run is no node of M: it is held at its clean value, 0,
  in every mode (mean ablation never switches it on). Hence F(every active node) = 1 and F(empty) = 0 in every
  mode, by construction (tests/test_evaluate.py checks both per mode, on the demo model and a tiny random model).
* **Ablation** ``"zero"`` (default): ablated latents are set to 0, i.e. their decoder contribution is removed.
  ``"mean"``: set to their mean over a reference set of prompts and positions (Marks et al.; BOS left out),
  ``reference_means`` -- for the demo model held-out text from its training generator
  (``demo_reference_means``). Without a reference, the prompt's own positions are the reference (a crude
  stand-in, stated in the scores' ``reference`` field by the callers that store it).
* **Error terms** ``"circuit"`` (default, Marks' own default handling): error nodes are circuit members like
  features -- the error terms the circuit holds are kept, the others ablated (so m(empty) ablates every error term
  too). ``"keep"``: every error term keeps its value whatever the circuit holds (Marks' ``handle_errors='keep'``),
  so scores measure only what the circuit's *features* carry. On the demo model ``"circuit"`` gives the cleaner,
  near-monotone curves; ``"keep"`` swings more with k.
* **BOS** is never ablated: it is the same in every prompt, so its dataset mean is itself and ablating it would
  only break the attention sink.
* Nothing ablated is the clean model exactly (the splice changes the activation by ``dec(f') - dec(f)``, which is
  0 bit for bit when f' = f), so m(M) is the clean metric and F(every active feature and error) = 1.

``curve(circuit, bundle, ks)`` sweeps circuit size (top-k per sublayer) within one discovered circuit
(``scd.discovery.discover.faithfulness_curve(prompt, ks)`` discovers it first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from scd.core.circuit import Circuit
from scd.core.errors import InputError, ModelError
from scd.models.bundle import ModelBundle

ABLATIONS = ("zero", "mean")
ERROR_MODES = ("circuit", "keep")
#: the node kinds this ablation can switch off: latents of SAEs spliced at a sublayer (transcoder latents are
#: not spliced here; circuit-tracer evaluates those graphs)
SPLICED_KINDS = ("resid", "attn", "mlp")

FeatureKey = tuple[str, int, int]  # (hook, latent, position)
ErrorKey = tuple[str, int]  # (hook, position)


class Scores(NamedTuple):
    faithfulness: float
    completeness: float
    m_model: float  # m(M): the clean model
    m_empty: float  # m(empty): every feature ablated
    m_circuit: float  # m(C)
    m_complement: float  # m(M minus C)

    def as_dict(self) -> dict[str, float]:
        """For ``Circuit.scores`` (JSON): non-finite values (0/0 when ablating changes nothing) are left out."""
        return {k: float(v) for k, v in self._asdict().items() if math.isfinite(v)}


class CurvePoint(NamedTuple):
    k: int  # top-k features per sublayer
    n_features: int  # feature nodes in the circuit of that size
    faithfulness: float
    completeness: float


# -- the ablated forward pass -------------------------------------------------------------------------------------


class Ablator:
    """Runs one prompt with chosen SAE latents (and error terms) ablated, for one metric."""

    def __init__(
        self,
        bundle: ModelBundle,
        token_ids: Sequence[int],
        metric,
        *,
        ablation: str = "zero",
        errors: str = "circuit",
        means: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        """``means``: per hook, the mean latent vector [d_sae] and mean error vector [d_model] over a reference set
        (``reference_means``), used by ``ablation="mean"``; None = this prompt's own positions."""
        if ablation not in ABLATIONS:
            raise InputError(f"unknown ablation {ablation!r}", f"use one of {', '.join(ABLATIONS)}")
        if errors not in ERROR_MODES:
            raise InputError(
                f"unknown error-term handling {errors!r}", f"use one of {', '.join(ERROR_MODES)}"
            )
        self.bundle, self.metric, self.ablation, self.errors = bundle, metric, ablation, errors
        self.tokens = torch.tensor([list(token_ids)], dtype=torch.long, device=bundle.device)
        self.hooks = list(bundle.saes)
        self.n_pos = self.tokens.shape[1]
        self._clean = self._capture()
        self.active = {h: f != 0 for h, (f, _) in self._clean.items()}  # [pos, d_sae]
        self.f_value, self.err_value = {}, {}
        for h, (f, err) in self._clean.items():
            if ablation == "zero":
                self.f_value[h], self.err_value[h] = torch.zeros_like(f[0]), torch.zeros_like(err[0])
            elif means is not None:
                self.f_value[h], self.err_value[h] = (m.to(f.device, f.dtype) for m in means[h])
            else:
                rows = slice(1, None) if self._has_bos() and self.n_pos > 1 else slice(None)
                self.f_value[h], self.err_value[h] = f[rows].mean(0), err[rows].mean(0)

    def _has_bos(self) -> bool:
        bos = self.bundle.tokenizer.bos_id
        return bos is not None and int(self.tokens[0, 0]) == bos

    @torch.no_grad()
    def _capture(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Clean features f [pos, d_sae] and errors [pos, d_model] at every SAE hook."""
        out = {}

        def grab(x, hook):
            sae = self.bundle.saes[hook.name]
            f = sae.encode(x)
            out[hook.name] = (f[0], (x - sae.decode(f).to(x.dtype))[0])

        self.bundle.model.run_with_hooks(self.tokens, fwd_hooks=[(h, grab) for h in self.hooks])
        return out

    @torch.no_grad()
    def clean_metric(self) -> float:
        return float(self.metric(self.bundle.model(self.tokens)))

    def metric_with(
        self, keep: dict[str, torch.Tensor], keep_errors: dict[str, torch.Tensor] | None = None
    ) -> float:
        """m with every latent outside ``keep[hook]`` ([pos, d_sae] bool) ablated; with ``errors="circuit"``
        also every error term outside ``keep_errors[hook]`` ([pos] bool)."""
        return self.metrics_with([keep], None if keep_errors is None else [keep_errors])[0]

    @torch.no_grad()
    def metrics_with(
        self,
        keeps: Sequence[dict[str, torch.Tensor]],
        keep_errors: Sequence[dict[str, torch.Tensor]] | None = None,
        *,
        batch: int = 64,
    ) -> list[float]:
        """`metric_with` for many node sets at once: up to ``batch`` copies of the prompt per forward pass, each
        with its own masks (scoring, curves and greedy selection run many ablations of one prompt; one pass per
        set paid the hook and SAE overhead once per set)."""
        if keep_errors is None:
            assert self.errors != "circuit", "errors='circuit' scores need keep_errors"
            keep_errors = [{} for _ in keeps]
        if len(keep_errors) != len(keeps):
            raise ValueError("one error mask per feature mask")
        out: list[float] = []
        for start in range(0, len(keeps), batch):
            chunk = range(start, min(start + batch, len(keeps)))
            kf = {h: torch.stack([keeps[i][h] for i in chunk]) for h in self.hooks}  # [B, pos, d_sae]
            ke = (
                {h: torch.stack([keep_errors[i][h] for i in chunk]) for h in self.hooks}  # [B, pos]
                if self.errors == "circuit"
                else None
            )
            out += self._run(kf, ke)
        return out

    def _run(self, kf: dict[str, torch.Tensor], ke: dict[str, torch.Tensor] | None) -> list[float]:
        n = next(iter(kf.values())).shape[0]

        def splice(x, hook):
            h = hook.name
            sae = self.bundle.saes[h]
            f = sae.encode(x)
            x_hat = sae.decode(f)
            # inactive in the clean run = not a node of M: held at its clean value, 0, in every mode
            ablated = torch.where(self.active[h], self.f_value[h].to(f.dtype), torch.zeros((), dtype=f.dtype))
            f_new = torch.where(kf[h] & self.active[h], f, ablated)
            out = x + (sae.decode(f_new) - x_hat).to(x.dtype)  # keeps the error term x - x_hat
            if ke is not None:
                err = x - x_hat.to(x.dtype)
                out = torch.where(~ke[h][..., None], out - err + self.err_value[h].to(x.dtype), out)
            return out

        tokens = self.tokens.expand(n, -1)
        logits = self.bundle.model.run_with_hooks(tokens, fwd_hooks=[(h, splice) for h in self.hooks])
        return [float(self.metric(logits[i : i + 1])) for i in range(n)]

    # -- node sets ------------------------------------------------------------------------------------------------

    def masks(self, features: Iterable[FeatureKey], complement: bool = False) -> dict[str, torch.Tensor]:
        """[pos, d_sae] keep-masks from (hook, latent, pos) keys; with `complement`, keep everything else."""
        keep = {h: torch.zeros_like(self.active[h]) for h in self.hooks}
        for hook, index, pos in features:
            if hook not in keep:
                raise ModelError(
                    f"the circuit has a node at {hook}, which this SAE set does not hook",
                    "score a circuit with the model and SAE set it was discovered with",
                )
            keep[hook][pos, index] = True
        if complement:
            keep = {h: ~m for h, m in keep.items()}
        return self._keep_bos(keep)

    def error_masks(self, errors: Iterable[ErrorKey], complement: bool = False) -> dict[str, torch.Tensor]:
        keep = {h: torch.zeros(self.n_pos, dtype=torch.bool, device=self.tokens.device) for h in self.hooks}
        for hook, pos in errors:
            keep[hook][pos] = True
        if complement:
            keep = {h: ~m for h, m in keep.items()}
        return self._keep_bos(keep)

    def _keep_bos(self, keep: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The BOS position is never ablated: it is the same in every prompt, so its (dataset-)mean is itself."""
        if self._has_bos():
            for m in keep.values():
                m[0] = True
        return keep

    def all_active(self) -> list[FeatureKey]:
        """Every (hook, latent, pos) active in the clean run: the full feature set."""
        keys = []
        for h, mask in self.active.items():
            for pos, idx in mask.nonzero().tolist():
                keys.append((h, idx, pos))
        return keys

    def scores(
        self,
        features: Iterable[FeatureKey],
        errors: Iterable[ErrorKey] = (),
        *,
        m_model: float | None = None,
        m_empty: float | None = None,
    ) -> Scores:
        """F and completeness of one node set: its ablations (circuit, complement, and empty / clean model where
        not given) run as one batch."""
        features, errors = list(features), list(errors)
        sets = [
            (self.masks(features), self.error_masks(errors)),
            (self.masks(features, complement=True), self.error_masks(errors, complement=True)),
        ]
        if m_empty is None:
            sets.append((self.masks([]), self.error_masks([])))
        if m_model is None:  # nothing ablated: the clean model, in the same batch as the others
            sets.append((self.masks([], complement=True), self.error_masks([], complement=True)))
        ms = self.metrics_with([f for f, _ in sets], [e for _, e in sets])
        m_c, m_comp = ms[0], ms[1]
        m_empty = ms[2] if m_empty is None else m_empty
        m_model = ms[-1] if m_model is None else m_model
        denom = m_model - m_empty
        if abs(denom) <= 1e-12 * max(1.0, abs(m_model)):
            faith = comp = float("nan")
        else:
            faith = (m_c - m_empty) / denom
            comp = 1.0 - (m_comp - m_empty) / denom
        return Scores(faith, comp, m_model, m_empty, m_c, m_comp)


# -- reference means ----------------------------------------------------------------------------------------------


@torch.no_grad()
def reference_means(
    bundle: ModelBundle, texts: Sequence[str]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per SAE hook, the mean latent vector and mean error term over every non-BOS position of ``texts`` (Marks
    et al.'s mean ablation: the dataset mean, not one prompt's)."""
    sums: dict[str, list] = {}
    count = 0
    bos = bundle.tokenizer.bos_id
    for text in texts:  # one at a time: reference texts differ in length
        ids = bundle.tokenizer.encode(text)
        tokens = torch.tensor([ids], dtype=torch.long, device=bundle.device)
        start = 1 if bos is not None and ids and ids[0] == bos else 0

        def grab(x, hook, start=start):
            sae = bundle.saes[hook.name]
            f = sae.encode(x)
            err = x - sae.decode(f).to(x.dtype)
            acc = sums.setdefault(hook.name, [0.0, 0.0])
            acc[0] = acc[0] + f[0, start:].double().sum(0)
            acc[1] = acc[1] + err[0, start:].double().sum(0)

        bundle.model.run_with_hooks(tokens, fwd_hooks=[(h, grab) for h in bundle.saes])
        count += tokens.shape[1] - start
    if count == 0:
        raise InputError("reference_means needs at least one non-BOS position", "pass some reference text")
    return {h: (f / count, e / count) for h, (f, e) in sums.items()}


def demo_reference_means(bundle: ModelBundle, n: int = 64, length: int = 63):
    """Reference means for the demo model: held-out text from its training generator (scd.demo.corpus)."""
    from scd.demo import corpus

    return reference_means(bundle, corpus.texts(n, length, seed=1, held_out=True))


_MEANS: dict[tuple, tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], str]] = {}


def default_means(
    bundle: ModelBundle, reference: str | None = None
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]] | None, str]:
    """(reference means, what they are over) for mean ablation: over the passages of the text file ``reference``
    (one per line) where given; else the demo model's held-out generator text; other models have no bundled
    reference text, so None and "prompt" (the prompt's own positions, `Ablator`'s stand-in). Computed once per
    process, SAE set and file."""
    if reference is None and bundle.name != "demo":
        return None, "prompt"
    key = (bundle.name, bundle.sae_set, tuple(bundle.saes), str(bundle.device), reference)
    if key not in _MEANS:
        if reference is None:
            _MEANS[key] = (demo_reference_means(bundle), "demo held-out text")
        else:
            texts = _reference_texts(reference)
            _MEANS[key] = (reference_means(bundle, texts), f"{Path(reference).name} ({len(texts)} passages)")
    return _MEANS[key]


def _reference_texts(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(
            f"cannot read the reference text {path}: {e}", "give a UTF-8 text file, one passage per line"
        ) from e
    texts = [t for t in lines if t.strip()]
    if not texts:
        raise InputError(
            f"the reference text {path} has no passages", "give a file with one passage per line"
        )
    return texts


# -- circuits -----------------------------------------------------------------------------------------------------


def circuit_metric(bundle: ModelBundle, circuit: Circuit):
    """The metric callable a circuit explains, rebuilt from its prompt record."""
    from scd.discovery import metrics

    p = circuit.prompt
    contrast_id = None if p.contrast is None else bundle.tokenizer.single_token_id(p.contrast)
    return metrics.build(circuit.params.get("metric", "log_prob"), p.target_id, contrast_id)


def node_keys(circuit: Circuit) -> tuple[list[FeatureKey], list[ErrorKey]]:
    feats = [(n.hook, n.index, n.pos) for n in circuit.nodes if n.kind in SPLICED_KINDS]
    errs = [(n.hook, n.pos) for n in circuit.nodes if n.kind == "error"]
    return feats, errs


def ablator_for(
    circuit: Circuit,
    bundle: ModelBundle,
    *,
    ablation: str = "zero",
    errors: str = "circuit",
    means: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Ablator:
    """The Ablator of `circuit`'s prompt and metric (ModelError if the bundle is not the one it came from)."""
    if (circuit.model, circuit.sae_set) != (bundle.name, bundle.sae_set):
        raise ModelError(
            f"the circuit was discovered with model {circuit.model!r} / SAE set {circuit.sae_set!r}, not "
            f"{bundle.name!r} / {bundle.sae_set!r}",
            "score it with the bundle it came from",
        )
    # a circuit over some sublayers (params "sublayers") splices only those SAEs: the others run exact
    bundle = bundle.with_sublayers(circuit.params.get("sublayers"))
    return Ablator(
        bundle,
        circuit.prompt.token_ids,
        circuit_metric(bundle, circuit),
        ablation=ablation,
        errors=errors,
        means=means if ablation == "mean" else None,
    )


def evaluate(
    circuit: Circuit,
    bundle: ModelBundle,
    *,
    ablation: str = "zero",
    errors: str = "circuit",
    means: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> Scores:
    """Faithfulness and completeness of `circuit` (see the module docstring for the choices)."""
    ablator = ablator_for(circuit, bundle, ablation=ablation, errors=errors, means=means)
    feats, errs = node_keys(circuit)
    return ablator.scores(feats, errs, m_model=circuit.metric_value)


def curve(
    circuit: Circuit,
    bundle: ModelBundle,
    ks: Sequence[int] = (1, 2, 5, 10, 20, 50),
    *,
    ablation: str = "zero",
    errors: str = "circuit",
    means: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> list[CurvePoint]:
    """Faithfulness and completeness of the top-k sub-circuit of `circuit` for each k in `ks`.

    The circuit of size k is the k features per sublayer with the largest |attribution| (the engine's own
    selection), taken from `circuit` (discovered at ``top_k >= max(ks)``: `scd.discovery.discover.faithfulness_curve`
    does that); error nodes follow the engine's rule: kept where |attribution| reaches the smallest kept
    feature's of their sublayer.
    """
    if not ks or min(ks) < 1:
        raise InputError("ks must be a non-empty list of sizes >= 1", "e.g. ks=[1, 5, 20]")
    ablator = ablator_for(circuit, bundle, ablation=ablation, errors=errors, means=means)
    m_model = circuit.metric_value
    m_empty = ablator.metric_with(ablator.masks([]), ablator.error_masks([]))
    by_hook: dict[str, list] = {}
    for n in circuit.nodes:
        if n.kind in SPLICED_KINDS or n.kind == "error":
            by_hook.setdefault(n.hook, []).append(n)
    points = []
    for k in sorted(set(ks)):
        feats, errs = [], []
        for members in by_hook.values():
            top = sorted((n for n in members if n.kind != "error"), key=lambda n: -abs(n.attribution))[:k]
            feats += [(n.hook, n.index, n.pos) for n in top]
            cut = min((abs(n.attribution) for n in top), default=math.inf)
            errs += [(n.hook, n.pos) for n in members if n.kind == "error" and abs(n.attribution) >= cut]
        s = ablator.scores(feats, errs, m_model=m_model, m_empty=m_empty)
        points.append(CurvePoint(k, len(feats), s.faithfulness, s.completeness))
    return points
