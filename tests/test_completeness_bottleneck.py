"""Why SAE circuits score completeness exactly 1 under ``zero/circuit`` on the demo model (a true property of that
convention, not a bug): the last SAE hook is the final residual stream (blocks.1.hook_resid_post), the only thing
the logit reads. A top-k circuit holds every latent active there at the last position and that position's error
node, so its complement zero-ablates all of them: the last position's final residual becomes the SAE's decoder
bias, exactly as in m(empty), and m(M minus C) = m(empty) whatever else the complement keeps."""

from __future__ import annotations

import pytest
import torch

import scd
from scd.discovery.evaluate import ablator_for, circuit_metric, node_keys
from scd.models.bundle import load_bundle


@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(1)
    return load_bundle("demo", "demo")


def test_complement_of_a_top_k_circuit_is_the_empty_circuit(bundle):
    c = scd.discover("Copyright (C", model="demo", saes="demo", metric="logit")
    last_hook, last = list(bundle.saes)[-1], len(c.prompt.tokens) - 1
    ablator = ablator_for(c, bundle)
    active = set(ablator.active[last_hook][last].nonzero().flatten().tolist())
    held = {n.index for n in c.nodes if n.hook == last_hook and n.pos == last}
    assert active | {-1} <= held  # every active latent there and the error node
    feats, errs = node_keys(c)
    s = ablator.scores(feats, errs)
    # hand computation: the model with the last position's final residual set to the SAE's decoder bias
    sae = bundle.saes[last_hook]
    bias = sae.decode(torch.zeros(1, sae.cfg.d_sae, dtype=torch.float32))[0]

    def pin(x, hook):
        x = x.clone()
        x[:, last] = bias.to(x.dtype)
        return x

    tokens = torch.tensor([c.prompt.token_ids])
    with torch.no_grad():
        logits = bundle.model.run_with_hooks(tokens, fwd_hooks=[(last_hook, pin)])
    m_pinned = float(circuit_metric(bundle, c)(logits))
    assert s.m_complement == pytest.approx(m_pinned, abs=1e-5)
    assert s.m_empty == pytest.approx(m_pinned, abs=1e-5)
    assert s.completeness == pytest.approx(1.0, abs=1e-6)
    # take the final residual's error node out of the circuit: the complement keeps it, and completeness is no
    # longer pinned to 1
    errs_without = [e for e in errs if e != (last_hook, last)]
    assert abs(ablator.scores(feats, errs_without).completeness - 1.0) > 0.01
