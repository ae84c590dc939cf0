r"""Prompts files: what ``scd ingest PROMPTS`` reads.

Plain text (any name but ``*.jsonl``), UTF-8:

* one prompt per line; the line is the prompt exactly as written (leading and trailing spaces are kept: they are
  tokens too), only the line ending (LF or CRLF) is removed; a UTF-8 byte-order mark at the start is ignored;
* blank lines (empty or only whitespace) are skipped, and so are lines whose first non-blank character is ``#``
  (to ingest a prompt that starts with ``#``, use ``.jsonl``);
* an explicit target follows a TAB: ``The capital of France is<TAB> Paris``. Everything after the first TAB is
  the target, again exactly as written (GPT-2 targets usually start with a space). Without a TAB the circuit
  explains the model's own top prediction;
* a prompt (with the same target) that appears twice is ingested once.

JSON Lines (``*.jsonl``): one object per line, ``{"prompt": "...", "target": "..."}``; ``target`` (and an
optional ``contrast`` token for a logit-difference metric) may be missing or null; blank lines are skipped.

``-`` reads standard input (plain text, or JSON Lines when the first non-blank line starts with ``{``): the one way
to stream prompts from a pipe. A path that is not a regular file (a FIFO, socket or device) is refused, since
reading it could block forever.

The whole file is read and checked before anything is written; problems raise InputError with the line number.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from scd.core.errors import InputError


@dataclass(frozen=True)
class PromptSpec:
    text: str
    target: str | None = None  # explicit target token; None = the model's top prediction
    contrast: str | None = None  # contrast token for the logit-difference metric
    line: int = 0  # 1-based line in the source (0 when built in code)

    @property
    def key(self) -> tuple[str, str | None, str | None]:
        return (self.text, self.target, self.contrast)


def read_prompts(path: str | Path) -> list[PromptSpec]:
    """Read and check a prompts file (``-`` = stdin). Returns the prompts in file order, duplicates dropped."""
    name = str(path)
    if name == "-":
        data = sys.stdin.buffer.read()
        label = "standard input"
        jsonl = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    else:
        p = Path(path)
        label = str(p)
        if not p.exists():
            raise InputError(
                f"prompts file {label} does not exist", "check the path (or pass - to read stdin)"
            )
        if p.is_dir():
            raise InputError(f"prompts file {label} is a folder", "pass a text file with one prompt per line")
        if not p.is_file():  # a FIFO, socket or device: reading it could block forever or never end
            raise InputError(
                f"prompts file {label} is not a regular file (a pipe, socket or device)",
                "save the prompts to a file, or pipe them into `scd ingest -` (standard input is read as a "
                "stream on purpose)",
            )
        try:
            data = p.read_bytes()
        except OSError as e:
            raise InputError(
                f"cannot read prompts file {label} ({e.strerror or e})", "check the file's permissions"
            ) from e
        jsonl = p.suffix.lower() == ".jsonl"
    text = _decode(data, label)
    specs = _parse_jsonl(text, label) if jsonl else _parse_text(text, label)
    if not specs:
        raise InputError(
            f"prompts file {label} has no prompts"
            + (" (only blank or # lines)" if text.strip() else " (it is empty)"),
            "write one prompt per line (see `scd ingest --help`)",
        )
    return dedupe(specs)


def parse_prompts(text: str, *, jsonl: bool = False, label: str = "<text>") -> list[PromptSpec]:
    """The same rules on a string (for the API and tests)."""
    specs = _parse_jsonl(text, label) if jsonl else _parse_text(text, label)
    return dedupe(specs)


def dedupe(specs: list[PromptSpec]) -> list[PromptSpec]:
    seen: set[tuple] = set()
    out = []
    for s in specs:
        if s.key not in seen:
            seen.add(s.key)
            out.append(s)
    return out


def _decode(data: bytes, label: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise InputError(
            f"prompts file {label} is not UTF-8 (byte {data[e.start]:#04x} on line {line})",
            "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE > FILE.utf8`)",
        ) from e


def _lines(text: str) -> list[str]:
    # split on LF only (str.splitlines would also split on form feeds and Unicode separators inside prompts)
    return [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]


def _parse_text(text: str, label: str) -> list[PromptSpec]:
    specs = []
    for no, line in enumerate(_lines(text), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        prompt, tab, target = line.partition("\t")
        if "\x00" in line:
            raise InputError(
                f"{label} line {no}: contains a NUL character", "remove it; is this a binary file?"
            )
        if not prompt.strip():
            raise InputError(
                f"{label} line {no}: the prompt before the TAB is empty", "write `prompt<TAB>target`"
            )
        if tab and not target:
            raise InputError(
                f"{label} line {no}: a TAB but no target after it",
                "write the target after the TAB, or remove the TAB to explain the model's own prediction",
            )
        specs.append(PromptSpec(prompt, target if tab else None, None, no))
    return specs


def _parse_jsonl(text: str, label: str) -> list[PromptSpec]:
    specs = []
    fix = 'write one JSON object per line: {"prompt": "...", "target": "..."} (target optional)'
    for no, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{label} line {no}: not valid JSON ({e.msg})", fix) from e
        if not isinstance(obj, dict):
            raise InputError(f"{label} line {no}: expected a JSON object, got {type(obj).__name__}", fix)
        unknown = set(obj) - {"prompt", "target", "contrast"}
        if unknown:
            raise InputError(f"{label} line {no}: unknown key(s) {', '.join(sorted(unknown))}", fix)
        prompt = obj.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f'{label} line {no}: "prompt" must be a non-empty string', fix)
        values = []
        for key in ("target", "contrast"):
            v = obj.get(key)
            if v is not None and (not isinstance(v, str) or v == ""):
                raise InputError(f'{label} line {no}: "{key}" must be a non-empty string or null', fix)
            values.append(v)
        specs.append(PromptSpec(prompt, values[0], values[1], no))
    return specs


# -- shards: N workers, each 1/N of the prompts ------------------------------------------------------------------

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(value: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with 0 <= I < N (I counts from 0, as Slurm array and Kubernetes Job indexes do)."""
    m = _SHARD.match(value or "")
    if m is None or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise InputError(
            f"--shard {value!r} is not I/N with 0 <= I < N",
            "e.g. --shard 0/4 ... --shard 3/4 for four workers ($SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)",
        )
    return int(m.group(1)), int(m.group(2))


def shard_of(spec: PromptSpec, count: int) -> int:
    """Which of `count` shards a prompt belongs to: a hash of what it asks (text, target, contrast), so the split
    does not depend on the file's order, on other prompts, or on the machine (sha1, not Python's salted hash)."""
    blob = json.dumps(list(spec.key), ensure_ascii=False).encode("utf-8")
    return int.from_bytes(hashlib.sha1(blob).digest()[:8], "big") % count


def select_shard(specs: list[PromptSpec], index: int, count: int) -> list[PromptSpec]:
    """The prompts of shard `index` of `count`, in file order. The N shards partition the prompts: each prompt is
    in exactly one, so N workers together ingest every prompt once."""
    return [s for s in specs if shard_of(s, count) == index]
