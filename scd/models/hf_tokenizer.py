"""A Hugging Face tokenizer seen through scd's Tokenizer protocol (scd.models.tokens).

GPT-2's byte-level BPE can encode any text, so `encode` never refuses characters; `single_token_id` is where
users trip (" Jordan" and "Jordan" are different tokens; " starshine" is three), and its error says which spelling
would work.
"""

from __future__ import annotations

from scd.core.errors import InputError, ModelError


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable-character table (byte-level BPE spells every token with these characters)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_OF = {ch: b for b, ch in _bytes_to_unicode().items()}


class HFTokenizer:
    """Adapter of a ``transformers`` tokenizer (GPT-2 style: BOS = ``<|endoftext|>``, no BOS added by itself)."""

    def __init__(self, hf_tokenizer, *, d_vocab: int | None = None):
        size = len(hf_tokenizer)
        # transformers can attach an empty tokenizer without complaint (transformers 5) -- with no tokenizer
        # files it even builds one holding only <|endoftext|>: refuse anything that cannot encode plain text.
        specials = len(set(hf_tokenizer.all_special_tokens))
        if size <= specials or not hf_tokenizer.encode("a", add_special_tokens=False):
            raise ModelError(
                f"the tokenizer has an empty vocabulary ({size} token{'s' if size != 1 else ''}, all special)",
                "give the model folder vocab.json + merges.txt (or tokenizer.json) from the same model",
            )
        if d_vocab is not None and size > d_vocab:
            raise ModelError(
                f"the tokenizer has {size} tokens but the model's unembedding only {d_vocab}",
                "use the tokenizer files that were saved with this model",
            )
        self.hf = hf_tokenizer
        self.vocab_size = size
        bos = hf_tokenizer.bos_token_id
        if bos is None:
            bos = hf_tokenizer.eos_token_id
        self.bos_id: int | None = bos

    def _encode_raw(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def encode(self, text: str) -> list[int]:
        ids = self._encode_raw(text)
        unk = self.hf.unk_token_id
        if unk is not None and unk in ids and self.hf.unk_token not in text:
            raise InputError(
                f"the prompt {text!r} has characters the tokenizer cannot encode",
                "remove or replace them",
            )
        return ([self.bos_id] if self.bos_id is not None else []) + ids

    def token_str(self, token_id: int) -> str:
        """Readable text of one token; byte-level pieces that are not whole UTF-8 characters show as ``\\xNN``
        (``decode`` would turn each into the same U+FFFD)."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            return f"<id {token_id}>"
        piece = self.hf.convert_ids_to_tokens(token_id)
        if piece is not None and all(ch in _BYTE_OF for ch in piece):
            return bytes(_BYTE_OF[ch] for ch in piece).decode("utf-8", errors="backslashreplace")
        return self.hf.decode([token_id])

    def single_token_id(self, text: str) -> int:
        if not text:
            raise InputError("the target is empty", "give one token, e.g. --target ' Jordan'")
        ids = self._encode_raw(text)
        if len(ids) == 1:
            return ids[0]
        pieces = [self.token_str(i) for i in ids]
        hint = ""
        if not text.startswith(" ") and len(self._encode_raw(" " + text)) == 1:
            hint = f" ({' ' + text!r} with a leading space is one token)"
        raise InputError(
            f"the target {text!r} is {len(ids)} tokens {pieces}, not one{hint}",
            "give a target that is exactly one token",
        )
