"""Offline stand-ins for GPT-2 and its SAEs: a tiny random Hugging Face GPT-2 folder and sae_lens SAE folders.

``save_tiny_gpt2(folder)`` writes what ``save_pretrained`` writes for GPT-2 (config.json, model.safetensors) plus a
byte-level BPE tokenizer (vocab.json + merges.txt: the 256 byte symbols, a few merges, ``<|endoftext|>``), so
loading it exercises the same code path as a real GPT-2 download. ``save_sae(folder, hook, d_in, d_sae)`` writes a
random StandardSAE with ``SAE.save_model``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

D_MODEL = 32
N_LAYERS = 2
VOCAB = 300
MERGES = [("Ġ", "t"), ("Ġt", "h"), ("Ġth", "e"), ("Ġ", "c")]


def save_tiny_gpt2(folder: Path, *, tokenizer: bool = True, seed: int = 0):
    """Write a random 2-layer GPT-2 (d_model 32, 4 heads, 64 positions, 300-token unembedding) to `folder`;
    return the HF model (in eval mode) for comparisons."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    eot = 256 + len(MERGES)  # <|endoftext|>: after the byte symbols and the merges
    config = GPT2Config(
        n_layer=N_LAYERS,
        n_embd=D_MODEL,
        n_head=4,
        n_positions=64,
        vocab_size=VOCAB,
        bos_token_id=eot,
        eos_token_id=eot,
    )
    model = GPT2LMHeadModel(config).eval()  # a fresh model is in training mode: dropout would differ
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if tokenizer:
        vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
        for a, b in MERGES:
            vocab[a + b] = len(vocab)
        vocab["<|endoftext|>"] = len(vocab)
        (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (folder / "merges.txt").write_text(
            "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES), encoding="utf-8"
        )
        (folder / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "bos_token": "<|endoftext|>",
                    "eos_token": "<|endoftext|>",
                    "unk_token": "<|endoftext|>",
                    "tokenizer_class": "GPT2Tokenizer",
                    "add_prefix_space": False,
                }
            ),
            encoding="utf-8",
        )
    return model


def save_sae(folder: Path, hook: str, d_in: int = D_MODEL, d_sae: int = 64, seed: int = 0) -> Path:
    """A random StandardSAE reading `hook`, saved with sae_lens' own save_model."""
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(seed)
    sae = StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=d_sae, metadata=SAEMetadata(hook_name=hook)))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.3)
        sae.W_dec.normal_(0, 0.3)
        sae.b_enc.normal_(0, 0.05)
        sae.b_dec.zero_()
    sae.save_model(folder)
    return folder
