"""`scd fetch` offline fails in one line and fetches nothing; `scd doctor` reads what the hub cache holds.

huggingface_hub reads HF_HOME / HF_HUB_OFFLINE / HF_ENDPOINT into ``huggingface_hub.constants`` when it is
imported, and its functions read those constants at call time: the tests set the constants (no subprocess).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from scd.cli import main
from scd.models.fetch import MODEL_REPO, cached_presets, model_cached, preset_files


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty hub cache that huggingface_hub uses by default."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize(
    "offline, endpoint, message",
    [
        (True, None, "HF_HUB_OFFLINE is set, so scd fetch cannot download"),
        # a closed local port: the request fails at once, as on a machine without a route to the hub
        (False, "http://127.0.0.1:9", "cannot reach the Hugging Face hub at http://127.0.0.1:9"),
    ],
)
def test_fetch_offline_is_one_line_nonzero_and_writes_nothing(hub, monkeypatch, offline, endpoint, message):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    if endpoint:
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    result = CliRunner().invoke(main, ["fetch", "gpt2-small", "--saes", "res-jb"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert "scd fetch` where huggingface.co is reachable" in lines[0] and "Traceback" not in result.output
    assert result.stdout == ""
    assert not list(hub.iterdir()), "an offline fetch must not leave partial downloads"


def _touch(hub: Path, repo: str, filename: str) -> None:
    """One file as the hub cache stores it: snapshots/<commit>/<file>, refs/main naming the commit."""
    commit = "0" * 40
    root = hub / ("models--" + repo.replace("/", "--"))
    (root / "snapshots" / commit / filename).parent.mkdir(parents=True, exist_ok=True)
    (root / "snapshots" / commit / filename).write_bytes(b"x")
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)


def test_doctor_reports_which_presets_are_cached(tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    assert not model_cached(hub)
    assert cached_presets(hub) == {"res-jb": (0, 13), "oai-v5-32k": (0, 36), "oai-v5-128k": (0, 36)}
    for name in ("config.json", "model.safetensors", "vocab.json"):
        _touch(hub, MODEL_REPO, name)
    assert model_cached(hub)
    files = preset_files("res-jb")
    assert files[0] == ("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.0.hook_resid_pre")
    for repo, path in files:
        for name in ("cfg.json", "sae_weights.safetensors"):
            if (path, name) != ("blocks.11.hook_resid_post", "sae_weights.safetensors"):
                _touch(hub, repo, f"{path}/{name}")
    assert cached_presets(hub)["res-jb"] == (12, 13)  # one weights file missing: that SAE is not cached
    _touch(hub, *files[-1][:1], f"{files[-1][1]}/sae_weights.safetensors")
    assert cached_presets(hub) == {"res-jb": (13, 13), "oai-v5-32k": (0, 36), "oai-v5-128k": (0, 36)}


def test_doctor_command_lists_the_presets(hub, tmp_path, monkeypatch):
    monkeypatch.delenv("SCD_NEO4J_URI", raising=False)
    result = CliRunner().invoke(main, ["doctor", "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "gpt2-small model  not cached -- `scd fetch gpt2-small`" in result.stdout
    assert "SAEs res-jb       not cached (0/13 SAEs) -- `scd fetch gpt2-small --saes res-jb`" in result.stdout
    for repo, path in preset_files("res-jb"):
        for name in ("cfg.json", "sae_weights.safetensors"):
            _touch(hub, repo, f"{path}/{name}")
    result = CliRunner().invoke(main, ["doctor", "--store", str(tmp_path / "s")])
    assert "SAEs res-jb       cached (13 SAEs)" in result.stdout


def test_fetch_with_everything_cached_needs_no_network(hub, monkeypatch):
    """Offline, with the model and the preset already in the cache, `scd fetch` says so and lists them (it used
    to refuse: "HF_HUB_OFFLINE is set, so scd fetch cannot download")."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for name in ("config.json", "model.safetensors", "vocab.json"):
        _touch(hub, MODEL_REPO, name)
    files = preset_files("res-jb")
    for repo, path in files[:-1]:
        for name in ("cfg.json", "sae_weights.safetensors"):
            _touch(hub, repo, f"{path}/{name}")
    result = CliRunner().invoke(main, ["fetch", "gpt2-small", "--saes", "res-jb"])
    assert (
        result.exit_code == 1 and "HF_HUB_OFFLINE is set" in result.stderr
    )  # one SAE missing: must download
    for name in ("cfg.json", "sae_weights.safetensors"):
        _touch(hub, files[-1][0], f"{files[-1][1]}/{name}")
    result = CliRunner().invoke(main, ["fetch", "gpt2-small", "--saes", "res-jb"])
    assert result.exit_code == 0, result.output
    assert "already in the Hugging Face cache, nothing to download" in result.stderr
    assert result.stdout.splitlines()[0].startswith(f"stored {MODEL_REPO}")
    assert any(files[0][0] in line for line in result.stdout.splitlines())
