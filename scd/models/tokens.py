"""One tokenizer interface for every model scd runs.

GPT-2 brings a Hugging Face tokenizer; the bundled demo model is character-level. The discovery engine talks
only to this protocol, so it never cares which one it has.
"""

from __future__ import annotations

from typing import Protocol


class Tokenizer(Protocol):
    #: id prepended to every prompt (GPT-2's <|endoftext|>, the demo model's BOS), or None
    bos_id: int | None
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, BOS included. Raises InputError naming characters the vocabulary lacks."""
        ...

    def token_str(self, token_id: int) -> str:
        """The readable string of one token id."""
        ...

    def single_token_id(self, text: str) -> int:
        """The id of `text` if it is exactly one token, else InputError naming the problem."""
        ...
