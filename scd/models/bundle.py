"""What the discovery engine runs on: a model, its tokenizer and the SAEs spliced into it.

`load_bundle(model, saes)` is the one function that turns user-facing names into a ModelBundle:

* models: ``demo`` (bundled, offline), ``gpt2-small`` (TransformerLens, from the Hugging Face hub), or the path of
  a local Hugging Face GPT-2 folder (config.json + weights + tokenizer files; loaded offline through
  TransformerLens' own GPT-2 weight conversion, processed exactly as ``from_pretrained`` processes GPT-2).
* SAE sets: a preset name (scd.models.presets: ``res-jb``, ``oai-v5-32k``, ``oai-v5-128k``), ``demo``, or local sae_lens
  SAE folders (``cfg.json`` + ``sae_weights.safetensors``) given as a comma list, a list, or one parent folder
  holding one folder per SAE. ``None`` picks the model's own set (demo -> ``demo``, gpt2-small -> ``res-jb``).

Every SAE is checked against the model -- its hook exists, its d_in equals the hook's width -- and the error names
each SAE that does not fit. A hub download that fails (offline machine) becomes one ModelError line that points to
``--model demo`` and ``--model PATH``.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformer_lens import HookedTransformer

from scd.core.errors import ModelError
from scd.models.presets import PRESETS, hook_layer, hook_sort_key, resolve_preset
from scd.models.tokens import Tokenizer

#: model names load_bundle knows besides local folders
MODEL_NAMES = ("demo", "gpt2-small")
_DEFAULT_SAES = {"demo": "demo", "gpt2-small": "res-jb"}
_OFFLINE_FIX = (
    "this machine cannot reach the Hugging Face hub: use --model demo (bundled, offline), or --model PATH with a "
    "local Hugging Face GPT-2 folder and --saes with local sae_lens SAE folders"
)


def _no_neuronpedia(hook: str, index: int) -> str | None:
    return None


@dataclass
class ModelBundle:
    name: str  # "demo", "gpt2-small", or the folder's name; used in Feature ids
    model: HookedTransformer
    tokenizer: Tokenizer
    saes: dict  # TransformerLens hook name -> sae_lens SAE, in forward order
    sae_set: str  # name of the SAE set ("demo", "res-jb", a folder name); used in Feature ids
    sae_ids: dict[str, str] = field(default_factory=dict)  # hook -> SAE identity (release/id or folder)
    neuronpedia: Callable[[str, int], str | None] = _no_neuronpedia
    source: str = ""  # where the model came from (bundled weights path, hub name, folder path)

    @property
    def n_layers(self) -> int:
        return self.model.cfg.n_layers

    @property
    def n_ctx(self) -> int:
        return self.model.cfg.n_ctx

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.cfg.device or "cpu")

    def layer(self, hook: str) -> int:
        return hook_layer(hook)

    def describe(self) -> str:
        return f"model {self.name} ({self.n_layers} layers), SAE set {self.sae_set} ({len(self.saes)} SAEs)"


# -- public entry point -------------------------------------------------------------------------------------------


def load_bundle(
    model: str = "demo", saes: str | Sequence[str] | None = None, device: str = "cpu"
) -> ModelBundle:
    """Load a model, its tokenizer and an SAE set, checked to fit together.

    >>> bundle = load_bundle("demo")            # doctest: +SKIP
    >>> bundle = load_bundle("path/to/gpt2", saes="path/to/saes")  # doctest: +SKIP
    """
    # TransformerLens prints "Moving model to device" on stdout while it builds a model: keep stdout for results
    with contextlib.redirect_stdout(io.StringIO()):
        name, hooked, tokenizer, source = _load_model(model, device)
    if saes is None:
        saes = _DEFAULT_SAES.get(model)
        if saes is None:
            raise ModelError(
                f"no SAE set given for model {name!r}",
                "pass --saes res-jb (or another preset) or --saes DIR with local sae_lens SAE folders",
            )
    sae_set, loaded, ids, neuronpedia = _load_saes(saes, device)
    check_saes_fit(hooked, loaded, ids, model_name=name)
    order = sorted(loaded, key=hook_sort_key)
    return ModelBundle(
        name=name,
        model=hooked,
        tokenizer=tokenizer,
        saes={h: loaded[h] for h in order},
        sae_set=sae_set,
        sae_ids={h: ids[h] for h in order},
        neuronpedia=neuronpedia,
        source=source,
    )


# -- models -------------------------------------------------------------------------------------------------------


def _load_model(model: str, device: str):
    if model == "demo":
        return ("demo", *_load_demo_model(device))
    if model == "gpt2-small":
        return ("gpt2-small", *_load_gpt2_from_hub(device))
    path = Path(model).expanduser()
    if path.is_dir():
        hooked, tokenizer = load_hf_gpt2_folder(path, device)
        return (path.resolve().name, hooked, tokenizer, str(path.resolve()))
    raise ModelError(
        f"unknown model {model!r}: not {' or '.join(MODEL_NAMES)} and not a folder",
        "use --model demo, --model gpt2-small, or --model PATH to a local Hugging Face GPT-2 folder",
    )


def _load_demo_model(device: str):
    from scd import demo

    if not demo.is_present(demo.WEIGHTS):
        raise ModelError(
            f"the demo model's weights are missing from {demo.WEIGHTS}",
            "reinstall scd, or retrain them with `scd demo-model train`",
        )
    hooked = demo.load_model(demo.WEIGHTS).to(device)
    return hooked, demo.load_tokenizer(demo.WEIGHTS), str(demo.WEIGHTS)


def _hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a failed hub download raises. OSError covers transformers' and huggingface_hub's own
    (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError) and requests'; httpx's are added if present."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - huggingface_hub < 1 uses requests, whose errors are OSErrors
        return (OSError,)
    return (OSError, httpx.HTTPError)


def _load_gpt2_from_hub(device: str):
    from scd.models.hf_tokenizer import HFTokenizer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            hooked = HookedTransformer.from_pretrained("gpt2", device=device)
    except _hub_errors() as e:
        raise ModelError(
            f"cannot download gpt2-small from the Hugging Face hub ({_short(e)})", _OFFLINE_FIX
        ) from e
    if hooked.tokenizer is None:
        raise ModelError("gpt2-small came without a tokenizer", _OFFLINE_FIX)
    return hooked, HFTokenizer(hooked.tokenizer, d_vocab=hooked.cfg.d_vocab), "hf-hub:gpt2"


def load_hf_gpt2_folder(path: str | Path, device: str = "cpu") -> tuple[HookedTransformer, Tokenizer]:
    """A HookedTransformer and tokenizer from a local Hugging Face GPT-2 folder, without touching the hub.

    Route (FIELD-NOTES section 2): the HF model is read from the folder, TransformerLens' ``convert_gpt2_weights``
    maps its weights, a ``HookedTransformerConfig`` is built from the HF config the way TransformerLens builds
    GPT-2's, and ``load_and_process_state_dict`` applies ``from_pretrained``'s default processing (fold LayerNorm,
    centre writing weights and unembedding) -- the processing GPT-2-small's published SAEs were trained under.
    """
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    from transformers import AutoConfig, AutoTokenizer, GPT2LMHeadModel

    from scd.models.hf_tokenizer import HFTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ModelError(
            f"{path} is not a Hugging Face model folder (no config.json)",
            "point --model at a folder written by save_pretrained (config.json, weights, tokenizer files)",
        )
    try:
        hf_config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {path / 'config.json'}: {_short(e)}") from e
    if getattr(hf_config, "model_type", None) != "gpt2":
        raise ModelError(
            f"{path} holds a {getattr(hf_config, 'model_type', '?')!r} model; scd loads local GPT-2 folders only",
            "use a GPT-2 folder, or --model demo",
        )
    try:
        hf_model = GPT2LMHeadModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as e:
        raise ModelError(
            f"cannot read the GPT-2 weights in {path}: {_short(e)}",
            "save the model with save_pretrained into that folder",
        ) from e
    if not ((path / "tokenizer.json").is_file() or (path / "vocab.json").is_file()):
        raise ModelError(
            f"{path} has no tokenizer files (tokenizer.json, or vocab.json + merges.txt)",
            "save the model's tokenizer into the folder too (tokenizer.save_pretrained(PATH))",
        )
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ModelError(
            f"cannot read a tokenizer from {path}: {_short(e)}",
            "add vocab.json + merges.txt (or tokenizer.json) of the model's tokenizer to the folder",
        ) from e
    tokenizer = HFTokenizer(hf_tokenizer, d_vocab=hf_config.vocab_size)

    n_embd = hf_config.n_embd
    cfg = HookedTransformerConfig(
        d_model=n_embd,
        d_head=n_embd // hf_config.n_head,
        n_heads=hf_config.n_head,
        d_mlp=hf_config.n_inner or 4 * n_embd,
        n_layers=hf_config.n_layer,
        n_ctx=hf_config.n_positions,
        eps=hf_config.layer_norm_epsilon,
        d_vocab=hf_config.vocab_size,
        act_fn=hf_config.activation_function,
        use_attn_scale=getattr(hf_config, "scale_attn_weights", True),
        scale_attn_by_inverse_layer_idx=getattr(hf_config, "scale_attn_by_inverse_layer_idx", False),
        normalization_type="LN",
        positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=True,
        tokenizer_prepends_bos=False,
        device=device,
        model_name=path.resolve().name,
    )
    state_dict = convert_gpt2_weights(hf_model, cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        hooked = HookedTransformer(cfg, move_to_device=False)
    hooked.load_and_process_state_dict(
        state_dict, fold_ln=True, center_writing_weights=True, center_unembed=True
    )
    hooked.to(device)
    hooked.eval()
    return hooked, tokenizer


# -- SAEs ---------------------------------------------------------------------------------------------------------


def _load_saes(saes: str | Sequence[str], device: str):
    """(set name, {hook: SAE}, {hook: identity}, neuronpedia(hook, index) -> url)."""
    if isinstance(saes, str) and saes in PRESETS:
        return _load_preset(saes, device)
    if isinstance(saes, str) and saes == "demo":
        return _load_demo_saes(device)
    folders = _sae_folders(saes)
    loaded: dict = {}
    ids: dict[str, str] = {}
    for folder in folders:
        sae = load_sae_folder(folder, device)
        hook = sae.cfg.metadata.hook_name
        if hook in loaded:
            raise ModelError(
                f"two SAEs read hook {hook}: {ids[hook]} and {folder.name}",
                "give one SAE per hook",
            )
        loaded[hook] = sae
        ids[hook] = folder.name
    parents = {f.resolve().parent for f in folders}
    if isinstance(saes, str) and len(folders) > 1 and Path(saes).is_dir():
        set_name = Path(saes).resolve().name
    elif len(folders) > 1 and len(parents) == 1:
        set_name = parents.pop().name
    else:
        set_name = "+".join(f.name for f in folders)
    return set_name, loaded, ids, _no_neuronpedia


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


def load_sae_folder(folder: str | Path, device: str = "cpu"):
    """One sae_lens SAE from a folder written by ``SAE.save_model`` (``cfg.json`` + ``sae_weights.safetensors``)."""
    from sae_lens import SAE

    folder = Path(folder)
    try:
        sae = SAE.load_from_disk(folder, device=device)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ModelError(
            f"cannot load the SAE in {folder}: {_short(e)}",
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
    return "demo", loaded, ids, _no_neuronpedia


def _load_preset(name: str, device: str):
    from sae_lens import SAE

    specs = resolve_preset(name)
    loaded: dict = {}
    ids: dict[str, str] = {}
    for spec in specs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sae = SAE.from_pretrained(spec.release, spec.sae_id, device=device)
        except _hub_errors() as e:
            raise ModelError(
                f"cannot download SAE {spec.identity} (preset {name}) from the Hugging Face hub ({_short(e)})",
                _OFFLINE_FIX,
            ) from e
        sae.eval()
        loaded[spec.hook] = sae
        ids[spec.hook] = spec.identity
    urls = {s.hook: s for s in specs}

    def neuronpedia(hook: str, index: int) -> str | None:
        spec = urls.get(hook)
        return spec.neuronpedia_url(index) if spec else None

    return name, loaded, ids, neuronpedia


def hook_widths(model: HookedTransformer, hooks: Sequence[str]) -> dict[str, int]:
    """Width (last dims flattened past [batch, pos]) of each existing hook, from one 1-token forward pass."""
    present = [h for h in hooks if h in model.hook_dict]
    if not present:
        return {}
    widths: dict[str, int] = {}

    def record(act, hook):
        widths[hook.name] = math.prod(act.shape[2:])

    fwd_hooks = [(h, record) for h in present]
    with torch.no_grad():
        model.run_with_hooks(
            torch.zeros(1, 1, dtype=torch.long, device=model.cfg.device), fwd_hooks=fwd_hooks
        )
    return widths


def check_saes_fit(model: HookedTransformer, saes: dict, ids: dict[str, str], *, model_name: str) -> None:
    """Raise one ModelError naming every SAE whose hook is missing from `model` or whose d_in != the hook width."""
    from scd.discovery.splice import SUBLAYER_RANK, parse_hook

    widths = hook_widths(model, list(saes))
    misfits = []
    for hook, sae in saes.items():
        if hook not in model.hook_dict:
            problem = f"hook {hook} is not in the model"
        elif sae.cfg.d_in != widths[hook]:
            problem = f"d_in {sae.cfg.d_in}, but {hook} has width {widths[hook]}"
        elif not _splices(hook, parse_hook):
            problem = f"scd splices SAEs at {'/'.join(SUBLAYER_RANK)} only, not {hook}"
        else:
            continue
        misfits.append(f"{ids.get(hook, hook)} ({problem})")
    if misfits:
        raise ModelError(
            f"{len(misfits)} SAE{'s' if len(misfits) > 1 else ''} do{'' if len(misfits) > 1 else 'es'} not fit "
            f"model {model_name!r}: {'; '.join(misfits)}",
            "use SAEs trained on this model's activations",
        )


def _splices(hook: str, parse_hook) -> bool:
    try:
        parse_hook(hook)
    except ValueError:
        return False
    return True


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."
