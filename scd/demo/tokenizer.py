"""The demo model's character-level tokenizer: one token per character, plus a BOS token.

It implements :class:`scd.models.tokens.Tokenizer`. Its vocabulary is saved next to the weights as ``vocab.json``:
``{"bos": "<bos>", "tokens": ["<bos>", " ", "!", ...]}`` -- the id of a token is its index in ``tokens``.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from scd.core.errors import InputError, ModelError

BOS = "<bos>"
#: letters, digits, space and common punctuation; the order fixes the token ids
CHARS = " " + string.ascii_letters + string.digits + "!\"#$%&'()*+,-./:;<=>?@[]_{}"


class CharTokenizer:
    """One token per character; `encode` prepends BOS and names any character outside the vocabulary."""

    def __init__(self, chars: str = CHARS, bos: str = BOS):
        if len(set(chars)) != len(chars):
            raise ModelError("the demo vocabulary repeats a character", "check vocab.json")
        self.bos = bos
        self.tokens = [bos, *chars]
        self.bos_id: int | None = 0
        self.vocab_size = len(self.tokens)
        self._id = {ch: i for i, ch in enumerate(self.tokens) if i != 0}

    @property
    def chars(self) -> str:
        return "".join(self.tokens[1:])

    # -- scd.models.tokens.Tokenizer ------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """BOS, then one id per character of `text`."""
        unknown = sorted({ch for ch in text if ch not in self._id})
        if unknown:
            raise InputError(
                f"the demo model's vocabulary has no {', '.join(repr(c) for c in unknown)} (in {text!r})",
                f"use only letters, digits, space and {self._punctuation()!r}",
            )
        return [0, *(self._id[ch] for ch in text)]

    def token_str(self, token_id: int) -> str:
        if not 0 <= token_id < self.vocab_size:
            raise InputError(f"token id {token_id} is outside the demo vocabulary (0..{self.vocab_size - 1})")
        return self.tokens[token_id]

    def single_token_id(self, text: str) -> int:
        if text == self.bos:
            return 0
        if len(text) != 1:
            raise InputError(
                f"{text!r} is not a single token of the demo model",
                "its tokens are single characters: give one character, e.g. ')'",
            )
        return self.encode(text)[1]

    # -- extras --------------------------------------------------------------------------------------------------

    def decode(self, ids) -> str:
        return "".join(self.tokens[int(i)] for i in ids if int(i) != 0)

    def _punctuation(self) -> str:
        return "".join(c for c in self.chars if not c.isalnum() and c != " ")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"bos": self.bos, "tokens": self.tokens}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        try:
            data = json.loads(Path(path).read_text())
            tokens = data["tokens"]
            bos = data["bos"]
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(
                f"cannot read the demo vocabulary {path}: {e}", "retrain with `scd demo-model train`"
            ) from e
        if tokens[0] != bos or any(len(t) != 1 for t in tokens[1:]):
            raise ModelError(f"{path} is not a character vocabulary with BOS first")
        return cls("".join(tokens[1:]), bos)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
