"""The demo model's synthetic corpus: nested brackets and natural-looking parentheticals.

Everything here is seeded and pure Python, so the training text, the held-out text and the evaluation cases are the
same on every machine.

Two kinds of sentence are mixed:

* **nested groups** -- words of letters (and now and then digits) with ``()``, ``[]`` and ``{}`` nested to depth
  1-4: ``ab (cd [e {fg} h] i) jk``;
* **natural parentheticals** -- ``Copyright (C) 2019 Ada Lane``, ``f(x) = (a + b)``, ``the cost (in dollars) is 42``,
  quoted strings, code-ish calls and lists.

The task that matters is predicting the right closing character. :func:`closers_due` lists, for a text, every
position where a closer comes and which one; :func:`expected_closer` says which closer a prompt such as
``"f(a [b (c"`` is waiting for.
"""

from __future__ import annotations

import random
from typing import Any, NamedTuple

OPENERS = "([{"
CLOSERS = ")]}"
CLOSER_OF = dict(zip(OPENERS, CLOSERS, strict=True))
OPENER_OF = dict(zip(CLOSERS, OPENERS, strict=True))
MAX_DEPTH = 4

#: held-out text and evaluation cases are drawn from seed + HELD_OUT_OFFSET, never from the training stream
HELD_OUT_OFFSET = 1_000_003

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_DIGITS = "0123456789"
_WORDS = (
    "the a an of to in is it on at by or as be we he she they this that was are for not with from have has "
    "cost price time size note see page pages value result table figure list item items name file line code "
    "data text word words list map set key keys sum mean max min total rate area speed width height year "
    "dollars euros meters seconds hours days units left right first last next new old main part case test"
).split()
_NAMES = (
    "Ada Alan Grace Linus Mary Tim Ken Barbara Dennis Edsger Claude Kim Lee Sam Ana Ivan Omar Mei".split()
)
_SURNAMES = (
    "Lane Turing Hopper Torvalds Shaw Berners Thompson Liskov Ritchie Dijkstra Shannon Park Chen".split()
)
_ORGS = "Acme Initech Globex Umbrella Hooli Stark Wayne Wonka Tyrell Cyberdyne Soylent Aperture".split()
_FUNCS = "f g h p q u v w F G".split()
_VARS = "x y z t n k a b c d i j".split()
_CALLS = "print len sum max min sort abs map list str int open range sqrt log exp".split()
_UNITS = "dollars euros meters seconds hours days percent kilograms miles bytes".split()


class ClosingDue(NamedTuple):
    """A closing character due at `pos`: `text[:pos]` is the prompt, `char` the closer, `depth` its nesting depth
    (1 = closing the outermost open bracket)."""

    pos: int
    char: str
    depth: int


class EvalCase(NamedTuple):
    """A prompt whose next character is a closer: `closer` is that character, `depth` its nesting depth."""

    prompt: str
    closer: str
    depth: int


# ---------------------------------------------------------------------------------------------------------------
# Where closers are due
# ---------------------------------------------------------------------------------------------------------------


def closers_due(text: str) -> list[ClosingDue]:
    """Every position in `text` where a closing bracket comes, with the closer and its depth.

    Brackets are matched with a stack; a closer that does not match the innermost open bracket (or comes with none
    open) is not listed and leaves the stack alone. Quotes are ordinary characters.
    """
    stack: list[str] = []
    due: list[ClosingDue] = []
    for pos, ch in enumerate(text):
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == OPENER_OF[ch]:
            due.append(ClosingDue(pos, ch, len(stack)))
            stack.pop()
    return due


def open_brackets(prompt: str) -> list[str]:
    """The brackets still open at the end of `prompt`, outermost first (mismatched closers are ignored)."""
    stack: list[str] = []
    for ch in prompt:
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == OPENER_OF[ch]:
            stack.pop()
    return stack


def expected_closer(prompt: str) -> str | None:
    """The closer the innermost open bracket of `prompt` is waiting for (``"f(a [b (c"`` -> ``")"``), or None."""
    stack = open_brackets(prompt)
    return CLOSER_OF[stack[-1]] if stack else None


# ---------------------------------------------------------------------------------------------------------------
# Sentence generators
# ---------------------------------------------------------------------------------------------------------------


def _word(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.45:
        return rng.choice(_WORDS)
    if r < 0.85:
        return "".join(rng.choice(_LOWER) for _ in range(rng.randint(1, 4)))
    if r < 0.92:
        return rng.choice(_UPPER) + "".join(rng.choice(_LOWER) for _ in range(rng.randint(0, 3)))
    if r < 0.97:
        return "".join(rng.choice(_DIGITS) for _ in range(rng.randint(1, 3)))
    return _symbol_word(rng)


def _symbol_word(rng: random.Random) -> str:
    """Rarer punctuation, so that every character of the vocabulary is seen in training."""
    a, b, n = rng.choice(_LOWER), rng.choice(_LOWER), rng.randint(1, 99)
    return rng.choice(
        [
            f"#{n}",
            f"${n}",
            f"{n}%",
            f"{a}&{b}",
            f"{a}<{b}",
            f"{a}>{b}",
            f"@{a}{b}",
            f"{a}_{b}",
            f"{a}-{b}",
            f"{a}/{b}",
            f"{a}+{b}",
            f"{a}={b}",
            f"{a}*",
            f"{a}'s",
            f"{n}.{n}",
        ]
    )


def _group(rng: random.Random, depth: int, max_depth: int) -> str:
    """One bracketed group at nesting `depth` (1-based) holding words and maybe deeper groups."""
    opener = rng.choice(OPENERS)
    items = []
    for _ in range(rng.randint(1, 3)):
        if depth < max_depth and rng.random() < 0.55:
            items.append(_group(rng, depth + 1, max_depth))
        else:
            items.append(_word(rng))
    # sometimes a deeper group is forced so that every depth up to max_depth is well represented
    if depth < max_depth and not any(i[0] in OPENERS for i in items) and rng.random() < 0.5:
        items.insert(rng.randint(0, len(items)), _group(rng, depth + 1, max_depth))
    inner = " ".join(items)
    if rng.random() < 0.15:
        inner = inner + rng.choice([",", ";", ":", "!", "?", "."]) if inner[-1] not in CLOSERS else inner
    return opener + inner + CLOSER_OF[opener]


def nested_sentence(rng: random.Random, max_depth: int | None = None) -> str:
    """Words with bracket groups nested to depth 1-4: ``ab (cd [e {fg} h] i) jk``."""
    max_depth = max_depth or rng.randint(1, MAX_DEPTH)
    parts = [_word(rng) for _ in range(rng.randint(0, 2))]
    parts.append(_group(rng, 1, max_depth))
    for _ in range(rng.randint(0, 2)):
        parts.append(_word(rng) if rng.random() < 0.6 else _group(rng, 1, max_depth))
    return " ".join(parts)


def _expr(rng: random.Random, depth: int, max_depth: int) -> str:
    """An arithmetic expression, bracketed to `max_depth`: ``a + [b * (c - 2)]``."""
    ops = ["+", "-", "*", "/"]
    terms = []
    for _ in range(rng.randint(2, 3)):
        if depth < max_depth and rng.random() < 0.5:
            o = rng.choice(OPENERS) if rng.random() < 0.4 else "("
            terms.append(o + _expr(rng, depth + 1, max_depth) + CLOSER_OF[o])
        elif rng.random() < 0.25:
            terms.append(
                f"{rng.choice(_FUNCS)}({rng.choice(_VARS)})" if depth < max_depth else rng.choice(_VARS)
            )
        else:
            terms.append(rng.choice(_VARS) if rng.random() < 0.7 else str(rng.randint(1, 99)))
    out = terms[0]
    for t in terms[1:]:
        out += f" {rng.choice(ops)} {t}"
    return out


def _math(rng: random.Random) -> str:
    f, v = rng.choice(_FUNCS), rng.choice(_VARS)
    if rng.random() < 0.3:
        args = f"{v}, {rng.choice(_VARS)}"
    else:
        args = v
    o = rng.choice(OPENERS) if rng.random() < 0.5 else "("
    return f"{f}({args}) = {o}{_expr(rng, 2, rng.randint(2, MAX_DEPTH))}{CLOSER_OF[o]}"


def _copyright(rng: random.Random) -> str:
    c = "C" if rng.random() < 0.8 else "c"
    who = rng.choice(_ORGS) if rng.random() < 0.5 else f"{rng.choice(_NAMES)} {rng.choice(_SURNAMES)}"
    year = str(rng.randint(1970, 2029))
    if rng.random() < 0.2:
        year += f"-{rng.randint(2000, 2029)}"
    head = rng.choice(["Copyright", "Copyright", "copyright", "COPYRIGHT"])
    return f"{head} ({c}) {year} {who}"


def _aside(rng: random.Random) -> str:
    templates = [
        lambda: f"the {rng.choice(_WORDS)} (in {rng.choice(_UNITS)}) is {rng.randint(1, 999)}",
        lambda: f"the cost (in {rng.choice(_UNITS)}) is {rng.randint(1, 999)}",
        lambda: (
            f"see the {rng.choice(['notes', 'table', 'figure', 'appendix'])} (page {rng.randint(1, 99)}) for details"
        ),
        lambda: f"{rng.choice(_NAMES)} ({rng.randint(18, 90)}) said {rng.choice(_WORDS)}",
        lambda: (
            f"it was {rng.choice(['big', 'small', 'late', 'fast'])} (as {rng.choice(_WORDS)} {rng.choice(_WORDS)} [{rng.choice(_WORDS)}] said)"
        ),
        lambda: (
            f"{rng.choice(_NAMES)} {rng.choice(_SURNAMES)} ({rng.randint(1900, 1990)}-{rng.randint(1991, 2024)})"
        ),
        lambda: f"the results (see table {rng.randint(1, 9)}) are {rng.choice(['good', 'bad', 'mixed'])}",
        lambda: f"a {rng.choice(_WORDS)} (or {rng.choice(_WORDS)}) is {rng.choice(['fine', 'ok', 'rare'])}",
    ]
    return rng.choice(templates)()


def _quoted(rng: random.Random) -> str:
    q = '"' if rng.random() < 0.7 else "'"
    inner = " ".join(_word(rng) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.4:
        inner += " " + _group(rng, 1, rng.randint(1, 2))
    verb = rng.choice(["said", "wrote", "asked", "read", "typed"])
    who = rng.choice(_NAMES)
    return f"{who} {verb} {q}{inner}{q}" if rng.random() < 0.6 else f"{q}{inner}{q} ({who} {verb})"


def _code(rng: random.Random) -> str:
    templates = [
        lambda: f"{rng.choice(_CALLS)}({rng.choice(_CALLS)}({rng.choice(_VARS)}))",
        lambda: (
            f"{rng.choice(_VARS)} = [{rng.randint(0, 9)}, {rng.randint(0, 9)}, [{rng.randint(0, 9)}, {rng.randint(0, 9)}]]"
        ),
        lambda: (
            f"{rng.choice(_VARS)} = {{'{rng.choice(_WORDS)}': [{rng.randint(0, 9)}, {rng.randint(0, 9)}]}}"
        ),
        lambda: (
            f"if ({rng.choice(_VARS)} {rng.choice(['>', '<', '=='])} {rng.randint(0, 9)}) {{ {rng.choice(_VARS)} = {rng.choice(_FUNCS)}({rng.choice(_VARS)}); }}"
        ),
        lambda: (
            f"{rng.choice(_VARS)}[{rng.choice(_VARS)}] = {rng.choice(_CALLS)}({rng.choice(_VARS)}[{rng.choice(_VARS)} + 1])"
        ),
        lambda: (
            f"{rng.choice(_CALLS)}({rng.choice(_VARS)}, {{{rng.choice(_VARS)}: ({rng.choice(_VARS)} + {rng.randint(1, 9)})}})"
        ),
    ]
    return rng.choice(templates)()


_KINDS = [
    (nested_sentence, 0.55),
    (_math, 0.12),
    (_copyright, 0.08),
    (_aside, 0.1),
    (_quoted, 0.07),
    (_code, 0.08),
]


def sentence(rng: random.Random) -> str:
    """One sentence of any kind, drawn with the corpus' mixing weights."""
    r = rng.random()
    for fn, w in _KINDS:
        if r < w:
            return fn(rng)
        r -= w
    return _KINDS[0][0](rng)


def _join(rng: random.Random) -> str:
    return rng.choice([". ", ". ", "; ", ", ", " ", ". "])


# ---------------------------------------------------------------------------------------------------------------
# Text streams and evaluation cases
# ---------------------------------------------------------------------------------------------------------------


def text(rng: random.Random, length: int) -> str:
    """Sentences joined until `length` characters, cut to exactly `length` (starts at a sentence start)."""
    out = sentence(rng)
    while len(out) < length:
        out += _join(rng) + sentence(rng)
    return out[:length]


def texts(n: int, length: int, seed: int = 0, held_out: bool = False) -> list[str]:
    """`n` texts of `length` characters from the training stream (or the held-out stream) of `seed`."""
    rng = random.Random(seed + (HELD_OUT_OFFSET if held_out else 0))
    return [text(rng, length) for _ in range(n)]


def eval_cases(n_per_depth: int = 250, max_len: int = 63, seed: int = 0) -> list[EvalCase]:
    """Held-out prompts whose next character is a closer, `n_per_depth` for each depth 1-4.

    Each prompt is a prefix of held-out text (at most `max_len` characters, starting at a sentence start); the case
    asks for the closer that actually follows.
    """
    rng = random.Random(seed + 2 * HELD_OUT_OFFSET)
    buckets: dict[int, list[EvalCase]] = {d: [] for d in range(1, MAX_DEPTH + 1)}
    while any(len(b) < n_per_depth for b in buckets.values()):
        t = text(rng, max_len + 1)
        for due in closers_due(t):
            b = buckets.get(due.depth)
            if b is not None and len(b) < n_per_depth and due.pos <= max_len and rng.random() < 0.5:
                b.append(EvalCase(t[: due.pos], due.char, due.depth))
    return [c for d in sorted(buckets) for c in buckets[d]]


def batch_tokens(tok: Any, rng: random.Random, n: int, n_ctx: int) -> Any:
    """`n` fresh corpus texts as a (n, n_ctx) torch tensor of token ids, BOS first: the training batches of the
    demo model, its SAEs and its transcoders (``tok``: the demo's CharTokenizer)."""
    import torch  # the corpus itself is plain Python

    return torch.tensor([tok.encode(text(rng, n_ctx - 1)) for _ in range(n)], dtype=torch.long)
