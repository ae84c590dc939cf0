"""The README's reading check as a test: ablate the latent of each row of `scd query drivers -p token=")"` (the
demo table, 8 rows as `make demo` prints it) on the prompts whose target is ')', and require the top row's latent
to lower the ')' logit more than every lower row's. The ablation is an intervention on the plain model
(bench/reading.py), independent of the attributions the ranking is built from. The 12 circuits here use the
default log-prob metric; the ablation measures the ')' logit minus the mean logit, as the README's check does.

Known limit (README, "Is the reading true?"): on the full 36-prompt demo store, row 10 (attention-0 latent 194)
drops ')' more than row 1 although its first-order effect is small; no attribution-based ranking sees that.
"""

from __future__ import annotations

import importlib.util

import pytest

from scd.core.config import StoreConfig
from scd.queries import runner

from .test_queries import demo_circuits, load  # noqa: F401 -- the module fixture, reused

ROWS = 8


def _logit_drop():
    spec = importlib.util.spec_from_file_location("reading", runner.LIBRARY.parent / "bench" / "reading.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.logit_drop


@pytest.mark.slow
def test_top_driver_drops_the_target_logit_most(demo_circuits, tmp_path):  # noqa: F811
    from scd.models.bundle import load_bundle

    config = StoreConfig(path=tmp_path / "demo")
    load(config, demo_circuits)
    rows = runner.query("drivers", store=config, token=")", limit=ROWS)
    prompts = [c.prompt.text for c in demo_circuits if c.prompt.target == ")"]
    assert len(rows) == ROWS and len(prompts) >= 8
    bundle = load_bundle("demo")
    logit_drop = _logit_drop()
    drops = []
    for feature in rows["feature"]:
        hook, index = feature.split("/")[-2], int(feature.split("/")[-1])
        drops.append(logit_drop(bundle, prompts, hook, index))
    assert drops[0] > 0 and all(drops[0] > d for d in drops[1:]), list(
        zip(rows["feature"], drops, strict=True)
    )
