"""SAE sets for the engine, and the one check that SAEs fit a model.

* `load_saes(saes)`: a preset name (scd.models.presets: ``res-jb``, ``oai-v5-32k``, ``oai-v5-128k``), ``demo``, or
  local sae_lens SAE folders (``cfg.json`` + ``sae_weights.safetensors``) given as a comma list, a list, or one
  parent folder holding one folder per SAE.
* `sae_misfits(model, saes)`: every SAE whose hook the model lacks, whose hook the engine cannot splice at, or
  whose d_in is not the hook's width. The loader turns the list into one ModelError, the engine
  (scd.discovery.splice) into a ValueError for callers that bring their own SAEs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from scd.core.errors import ModelError
from scd.core.hooks import SPLICE_SUBLAYERS, is_splice_hook
from scd.models.hub import OFFLINE_FIX, hub_errors, short
from scd.models.lazy import LazySAESet, memory_budget, weight_bytes
from scd.models.presets import PRESETS, resolve_preset

Neuronpedia = Callable[[str, int], "str | None"]


def no_neuronpedia(hook: str, index: int) -> str | None:
    return None


def sae_misfits(model, saes: dict, ids: dict[str, str] | None = None) -> list[str]:
    """One ``"identity (problem)"`` per SAE that does not fit `model` (a HookedTransformer); [] if all fit.

    Every splice sublayer (resid_pre/mid/post, attn_out, mlp_out) is d_model wide, so d_in is checked against
    d_model without running the model."""
    ids = ids or {}
    misfits = []
    for hook, sae in saes.items():
        if hook not in model.hook_dict:
            problem = f"hook {hook} is not in the model"
        elif not is_splice_hook(hook):
            problem = f"unsupported SAE hook {hook!r}: scd splices SAEs at {'/'.join(SPLICE_SUBLAYERS)} only"
        elif sae.cfg.d_in != model.cfg.d_model:
            problem = f"d_in {sae.cfg.d_in}, but {hook} has width {model.cfg.d_model}"
        else:
            continue
        misfits.append(f"{ids.get(hook, hook)} ({problem})")
    return misfits


def check_saes_fit(model, saes: dict, ids: dict[str, str], *, model_name: str) -> None:
    """Raise one ModelError naming every SAE that does not fit `model` (see `sae_misfits`)."""
    misfits = sae_misfits(model, saes, ids)
    if misfits:
        raise ModelError(
            f"{len(misfits)} SAE{'s' if len(misfits) > 1 else ''} do{'' if len(misfits) > 1 else 'es'} not fit "
            f"model {model_name!r}: {'; '.join(misfits)}",
            "use SAEs trained on this model's activations",
        )


def load_saes(
    saes: str | Sequence[str], device: str = "cpu", lazy: bool | None = None
) -> tuple[str, dict, dict[str, str], Neuronpedia]:
    """(set name, {hook: SAE}, {hook: identity}, neuronpedia(hook, index) -> url).

    ``lazy``: True gives a `scd.models.lazy.LazySAESet` (configs now, weights one SAE at a time when needed),
    False loads every SAE; None (the default) is lazy exactly when the set's weights exceed the memory budget
    (``SCD_SAE_MEMORY_GB``, default 4 GiB; the demo set is always loaded)."""
    if isinstance(saes, str) and saes in PRESETS:
        return _load_preset(saes, device, lazy)
    if isinstance(saes, str) and saes == "demo":
        return _load_demo_saes(device)
    folders = _sae_folders(saes)
    cfgs = {folder: sae_folder_config(folder) for folder in folders}
    loaded: dict = LazySAESet() if _go_lazy(lazy, cfgs.values()) else {}
    ids: dict[str, str] = {}
    for folder, cfg in cfgs.items():
        hook = cfg.metadata.hook_name
        if hook in loaded:
            raise ModelError(
                f"two SAEs read hook {hook}: {ids[hook]} and {folder.name}",
                "give one SAE per hook",
            )
        if isinstance(loaded, LazySAESet):
            loaded.add(hook, cfg, partial(load_sae_folder, folder, device), folder.name)
        else:
            loaded[hook] = load_sae_folder(folder, device)
        ids[hook] = folder.name
    parents = {f.resolve().parent for f in folders}
    if isinstance(saes, str) and len(folders) > 1 and Path(saes).is_dir():
        set_name = Path(saes).resolve().name
    elif len(folders) > 1 and len(parents) == 1:
        set_name = parents.pop().name
    else:
        set_name = "+".join(f.name for f in folders)
    return set_name, loaded, ids, no_neuronpedia


def _sae_folders(saes: str | Sequence[str]) -> list[Path]:
    items = [s.strip() for s in saes.split(",")] if isinstance(saes, str) else [str(s) for s in saes]
    items = [s for s in items if s]
    if not items:
        raise ModelError("no SAEs given", "pass --saes with a preset name or sae_lens SAE folders")
    folders: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if (p / "cfg.json").is_file():
            folders.append(p)
        elif p.is_dir() and (subs := sorted(d for d in p.iterdir() if (d / "cfg.json").is_file())):
            folders.extend(subs)
        else:
            known = ", ".join([*PRESETS, "demo"])
            raise ModelError(
                f"{item!r} is neither an SAE preset ({known}) nor a folder of sae_lens SAEs",
                "pass a preset name, SAE folders (cfg.json + sae_weights.safetensors) separated by commas, "
                "or a folder holding one such folder per SAE",
            )
    return folders


def _go_lazy(lazy: bool | None, cfgs) -> bool:
    if lazy is not None:
        return lazy
    return sum(weight_bytes(c) for c in cfgs) > memory_budget()


def _config(cfg_dict: dict):
    from sae_lens import SAE
    from sae_lens.loading.pretrained_sae_loaders import handle_config_defaulting

    cfg_dict = handle_config_defaulting(cfg_dict)
    return SAE.get_sae_config_class_for_architecture(cfg_dict["architecture"]).from_dict(cfg_dict)


def sae_folder_config(folder: Path):
    """The sae_lens config of the SAE in `folder` (its cfg.json), without reading its weights."""
    from sae_lens.loading.pretrained_sae_loaders import get_sae_lens_config_from_disk

    try:
        cfg = _config(get_sae_lens_config_from_disk(folder, "cpu", None))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(
            f"cannot load the SAE in {folder}: {short(e)}",
            "the folder needs cfg.json + sae_weights.safetensors as SAE.save_model writes them",
        ) from e
    if not cfg.metadata.hook_name:
        raise ModelError(
            f"the SAE in {folder} does not say which hook it reads (cfg.json metadata.hook_name)",
            "save it with a hook_name in its metadata",
        )
    return cfg


def load_sae_folder(folder: str | Path, device: str = "cpu"):
    """One sae_lens SAE from a folder written by ``SAE.save_model`` (``cfg.json`` + ``sae_weights.safetensors``)."""
    from sae_lens import SAE

    folder = Path(folder)
    try:
        sae = SAE.load_from_disk(folder, device=device)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ModelError(
            f"cannot load the SAE in {folder}: {short(e)}",
            "the folder needs cfg.json + sae_weights.safetensors as SAE.save_model writes them",
        ) from e
    if not sae.cfg.metadata.hook_name:
        raise ModelError(
            f"the SAE in {folder} does not say which hook it reads (cfg.json metadata.hook_name)",
            "save it with a hook_name in its metadata",
        )
    sae.eval()
    return sae


def _load_demo_saes(device: str):
    from scd import demo

    if not demo.is_present(demo.WEIGHTS):
        raise ModelError(
            f"the demo SAEs are missing from {demo.WEIGHTS}",
            "reinstall scd, or retrain them with `scd demo-model train`",
        )
    folders = demo.sae_folders(demo.WEIGHTS)
    loaded = {hook: sae.to(device) for hook, sae in demo.load_saes(demo.WEIGHTS).items()}
    ids = {hook: Path(folders[hook]).name if hook in folders else hook for hook in loaded}
    return "demo", loaded, ids, no_neuronpedia


def _load_preset(name: str, device: str, lazy: bool | None = None):
    specs = resolve_preset(name)
    if lazy is None:  # the configs (small files) say how large the weights are
        lazy = _go_lazy(None, [_preset_config(name, spec) for spec in specs])
    loaded: dict = LazySAESet() if lazy else {}
    ids: dict[str, str] = {}
    for spec in specs:
        if isinstance(loaded, LazySAESet):
            loaded.add(
                spec.hook, _preset_config(name, spec), partial(_preset_sae, name, spec, device), spec.identity
            )
        else:
            loaded[spec.hook] = _preset_sae(name, spec, device)
        ids[spec.hook] = spec.identity
    urls = {s.hook: s for s in specs}

    def neuronpedia(hook: str, index: int) -> str | None:
        spec = urls.get(hook)
        return spec.neuronpedia_url(index) if spec else None

    return name, loaded, ids, neuronpedia


def _preset_sae(name: str, spec, device: str):
    from sae_lens import SAE

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sae = SAE.from_pretrained(spec.release, spec.sae_id, device=device)
    except hub_errors() as e:
        raise ModelError(
            f"cannot download SAE {spec.identity} (preset {name}) from the Hugging Face hub ({short(e)})",
            OFFLINE_FIX,
        ) from e
    return sae.eval()


def _preset_config(name: str, spec):
    from sae_lens.loading.pretrained_sae_loaders import load_sae_config_from_huggingface

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _config(load_sae_config_from_huggingface(spec.release, spec.sae_id))
    except hub_errors() as e:
        raise ModelError(
            f"cannot download SAE {spec.identity} (preset {name}) from the Hugging Face hub ({short(e)})",
            OFFLINE_FIX,
        ) from e
