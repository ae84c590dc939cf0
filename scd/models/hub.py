"""Errors of the Hugging Face hub and of reading weights, as one short ModelError line for models and SAEs alike."""

from __future__ import annotations

OFFLINE_FIX = (
    "this machine cannot reach the Hugging Face hub: use --model demo (bundled, offline), or --model PATH with a "
    "local Hugging Face GPT-2 folder and --saes with local sae_lens SAE folders"
)


def hub_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a failed hub download raises. OSError covers transformers' and huggingface_hub's own
    (LocalEntryNotFoundError, OfflineModeIsEnabled, HfHubHTTPError) and requests'; httpx's are added if present."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - huggingface_hub < 1 uses requests, whose errors are OSErrors
        return (OSError,)
    return (OSError, httpx.HTTPError)


def short(e: BaseException) -> str:
    """An exception as one line of at most 160 characters."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."
