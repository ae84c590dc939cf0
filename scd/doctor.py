"""`scd doctor`: what is installed, what is reachable, where things live.

Each check is a (name, ok, detail) row; the command prints them all and fails if any required one failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from scd.core.config import StoreConfig
from scd.core.secrets import scrub

PACKAGES = ("torch", "transformer-lens", "sae-lens", "neo4j", "ladybug")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def __post_init__(self) -> None:
        self.detail = scrub(self.detail)  # a server's or driver's message may quote a login


def package_checks() -> list[Check]:
    checks = []
    for name in PACKAGES:
        try:
            checks.append(Check(name, True, version(name)))
        except PackageNotFoundError:
            checks.append(Check(name, False, "not installed -- `pip install -e .` installs it"))
    return checks


def demo_check() -> Check:
    from scd import demo

    present = getattr(demo, "is_present", lambda: False)()
    where = getattr(demo, "WEIGHTS", "scd/demo/weights")
    return Check(
        "demo model", present, f"{where}" if present else f"missing at {where} -- run `scd demo-model train`"
    )


def neo4j_check(config: StoreConfig) -> Check:
    """Connect and ask the server its version; one line either way. Opening goes through the store
    (scd.store.neo4j), so a failure reads exactly as it would for `scd ingest` or `scd query`."""
    from scd.core.errors import StoreError
    from scd.store.neo4j import Neo4jStore

    if config.neo4j_uri is None:
        return Check("neo4j server", True, "none configured (pass --neo4j URI or set SCD_NEO4J_URI)")
    try:
        with Neo4jStore.open(config, read_only=True) as store:
            records, _, _ = store.driver.execute_query(
                "CALL dbms.components() YIELD name, versions, edition RETURN versions[0] AS v, edition AS e",
                database_=config.neo4j_database,
            )
    except StoreError as e:
        return Check("neo4j server", False, e.line())
    return Check("neo4j server", True, f"{config.neo4j_uri}: Neo4j {records[0]['v']} {records[0]['e']}")


def gpt2_cache_checks(cache_dir=None) -> list[Check]:
    """Which GPT-2-small presets would load offline from the Hugging Face cache (informational: never fails)."""
    from scd.models.fetch import cached_presets, model_cached

    fix = "`scd fetch gpt2-small --saes {}` on a machine with internet"
    checks = [
        Check(
            "gpt2-small model",
            True,
            "cached"
            if model_cached(cache_dir)
            else "not cached -- `scd fetch gpt2-small` on a machine with internet",
        )
    ]
    for preset, (have, total) in cached_presets(cache_dir).items():
        if have == total:
            detail = f"cached ({total} SAEs)"
        else:
            detail = f"not cached ({have}/{total} SAEs) -- {fix.format(preset)}"
        checks.append(Check(f"SAEs {preset}", True, detail))
    return checks


def diagnose(config: StoreConfig) -> list[Check]:
    checks = package_checks() + [demo_check()] + gpt2_cache_checks()
    checks.append(neo4j_check(config))
    path = config.path.resolve()
    state = "exists" if path.exists() else "will be created on first ingest"
    checks.append(Check("embedded store", True, f"{path} ({state})"))
    return checks
