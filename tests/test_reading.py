"""The README's reading check as a test. Circuits of the demo model for the bracket prompts of
examples/prompts.txt, discovered as `make demo` does (``--metric logit``, scored), go into a store; then for the
first rows of `scd query drivers -p token=")"` and of `scd query feeders -p token=")" -p order_by=measured` (the
README's two tables), each row's latent is zero-ablated on every stored prompt whose target is ')' and the drop of
the ')' logit is measured (bench/reading.py: an intervention on the plain model with only that SAE spliced,
independent of the store). The top row's latent must lower it more than every lower row's.

The ranking by Σ|weight| alone fails this (attention-0 latent 194 weighs little and drops ')' most: its effect goes
through layer-1 attention patterns, where first-order estimates are far off); `test_weight_ranking_misplaces_*`
keeps that finding honest.
"""

from __future__ import annotations

import importlib.util

import pytest

from scd.core.config import StoreConfig
from scd.queries import runner

from .test_queries import load

ROWS = 8


def _logit_drop():
    spec = importlib.util.spec_from_file_location("reading", runner.LIBRARY.parent / "bench" / "reading.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.logit_drop


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    from scd import demo

    if not demo.is_present():
        pytest.skip("the demo model's weights are not built (scd/demo/weights)")
    from scd.discovery.discover import discover_batch
    from scd.ingest.prompts import read_prompts
    from scd.models.bundle import load_bundle

    specs = read_prompts(runner.LIBRARY.parent / "examples" / "prompts.txt")
    bundle = load_bundle("demo")
    circuits = discover_batch(
        [s.text for s in specs], model=bundle, targets=[s.target for s in specs], metric="logit", scores=True
    )
    assert all(not isinstance(c, Exception) for c in circuits)
    config = StoreConfig(path=tmp_path_factory.mktemp("reading") / "demo")
    load(config, circuits)
    prompts = [c.prompt.text for c in circuits if c.prompt.target == ")"]
    assert len(prompts) >= 20
    return config, bundle, prompts


def _drops(bundle, prompts, features) -> list[float]:
    logit_drop = _logit_drop()
    return [logit_drop(bundle, prompts, f.split("/")[-2], int(f.split("/")[-1])) for f in features]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, params", [("drivers", {}), ("feeders", {"order_by": "measured"})], ids=["drivers", "feeders"]
)
def test_top_row_drops_the_target_logit_most(demo_store, name, params):
    config, bundle, prompts = demo_store
    rows = runner.query(name, store=config, token=")", limit=ROWS, **params)
    assert len(rows) == ROWS and rows["measured"].notna().all()
    drops = _drops(bundle, prompts, rows["feature"])
    assert drops[0] > 0 and all(drops[0] > d for d in drops[1:]), list(
        zip(rows["feature"], drops, strict=True)
    )


@pytest.mark.slow
def test_drivers_measured_is_the_ablation_on_the_prompts_where_the_latent_is_in_the_circuit(demo_store):
    """`measured` per row is the same intervention bench/reading.py makes, averaged over the ')' circuits (0 where
    the latent is not in the circuit): for a latent in every such circuit, exactly the bench's drop."""
    config, bundle, prompts = demo_store
    rows = runner.query("drivers", store=config, token=")", limit=ROWS)
    everywhere = rows[rows["circuits"] == len(prompts)]
    assert len(everywhere) >= 3
    drops = _drops(bundle, prompts, everywhere["feature"])
    assert everywhere["measured"].tolist() == pytest.approx(drops, abs=1e-4)


@pytest.mark.slow
def test_weight_ranking_misplaces_the_strongest_latent(demo_store):
    """The finding the measured column exists for: by Σ|weight| (feeders' default order) the latent that drops ')'
    most is not the top row."""
    config, bundle, prompts = demo_store
    rows = runner.query("feeders", store=config, token=")", limit=ROWS)
    drops = _drops(bundle, prompts, rows["feature"])
    assert max(drops) > drops[0], list(zip(rows["feature"], drops, strict=True))
