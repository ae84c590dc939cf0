"""--device auto: cuda when torch sees a GPU, else cpu; exercised on a CPU machine by faking torch's answer."""

import torch

from scd.models.bundle import load_bundle, resolve_device


def test_auto_picks_cuda_only_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device(None) == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu", (
        "explicit names pass through"
    )


def test_auto_loads_the_bundle_where_torch_can_run_it():
    bundle = load_bundle("demo", device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert bundle.device.type == expected
    assert {p.device.type for p in bundle.model.parameters()} == {expected}
    assert {p.device.type for sae in bundle.saes.values() for p in sae.parameters()} == {expected}
