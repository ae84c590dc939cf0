"""Comparing circuits: two side by side, or a whole group of prompts.

* ``compare_circuits(store, a, b)`` -- the ``compare`` query's rows (every SAE feature of either circuit with
  its attribution in each and its status: shared / only_a / only_b) plus the counts and the Jaccard similarity
  of the two feature sets, |A ∩ B| / |A ∪ B|.
* ``compare_group(store, pattern)`` -- every circuit whose prompt text matches a regular expression (the whole
  text, as Cypher's ``=~``): how often each feature appears across the group, and the pairwise Jaccard
  similarity matrix of their feature sets.
* ``compare(store, prompts, pattern)`` -- what `scd compare` prints: either of the above, checked and shaped into
  named sections and a summary for scd.queries.render.render_sections.

Only SAE latents count as features here (input tokens, logits and SAE error terms are left out: tokens differ
with the text and error terms sit in every circuit). A circuit is named by its prompt text, its prompt id or its
circuit id; a prompt with several circuits (other SAE sets or parameters) must be named by circuit id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from scd.core.errors import InputError, QueryError
from scd.queries.runner import run

if TYPE_CHECKING:
    from scd.store.base import Store


@dataclass(frozen=True)
class CircuitRef:
    circuit: str
    prompt: str


@dataclass
class CircuitComparison:
    a: CircuitRef
    b: CircuitRef
    features: pd.DataFrame  # feature, kind, layer, promotes, status, attribution_a, attribution_b
    shared: int
    only_a: int
    only_b: int

    @property
    def jaccard(self) -> float:
        union = self.shared + self.only_a + self.only_b
        return self.shared / union if union else 1.0

    def summary(self) -> dict[str, object]:
        return {
            "a": f"{self.a.prompt!r} ({self.a.circuit})",
            "b": f"{self.b.prompt!r} ({self.b.circuit})",
            "shared": self.shared,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "jaccard": round(self.jaccard, 4),
        }

    def sections(self, limit: int | None = None) -> dict[str, pd.DataFrame]:
        return {"features": _head(self.features, limit)}


@dataclass
class GroupComparison:
    pattern: str
    circuits: pd.DataFrame  # circuit, prompt, features
    frequency: pd.DataFrame  # feature, kind, layer, promotes, circuits, share, mean_attribution
    similarity: pd.DataFrame  # square: Jaccard between circuits, index and columns = circuit ids

    def summary(self) -> dict[str, object]:
        return {"pattern": self.pattern, "circuits": len(self.circuits), "features": len(self.frequency)}

    def sections(self, limit: int | None = None) -> dict[str, pd.DataFrame]:
        """Prompts numbered 1..n, the feature frequency (its first ``limit`` rows), and the similarity matrix
        with rows and columns named by those numbers (prompt texts are too long for column headers)."""
        labels = [str(i + 1) for i in range(len(self.circuits))]
        circuits = self.circuits.copy()
        circuits.insert(0, "#", labels)
        sim = self.similarity.set_axis(labels, axis=0).set_axis(labels, axis=1).reset_index(names="#")
        return {
            "prompts": circuits,
            "feature frequency": _head(self.frequency, limit),
            "jaccard similarity": sim,
        }

    def similarity_by_prompt(self) -> pd.DataFrame:
        """The similarity matrix with rows and columns named by prompt text (for a heatmap)."""
        prompts = list(self.circuits["prompt"])
        return self.similarity.set_axis(prompts, axis=0).set_axis(prompts, axis=1)


def _head(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    return df if limit is None else df.head(limit)


def resolve(store: Store, name: str) -> CircuitRef:
    """The one circuit a prompt text, prompt id or circuit id names; QueryError if none or several."""
    rows = run(store, "circuits", {"prompt": name})
    if rows.empty:
        raise QueryError(
            f"no circuit for {name!r}",
            "name a prompt text, prompt id or circuit id (see `scd query circuits`)",
        )
    if len(rows) > 1:
        ids = ", ".join(rows["circuit"])
        raise QueryError(f"{name!r} has {len(rows)} circuits ({ids})", "name one of them by its circuit id")
    return CircuitRef(rows["circuit"][0], rows["prompt"][0])


def compare_circuits(store: Store, a: str, b: str) -> CircuitComparison:
    """Two circuits side by side (see the module docstring)."""
    ra, rb = resolve(store, a), resolve(store, b)
    df = run(store, "compare", {"a": ra.circuit, "b": rb.circuit, "limit": 1_000_000})
    counts = df["status"].value_counts() if not df.empty else pd.Series(dtype=int)
    return CircuitComparison(
        a=ra,
        b=rb,
        features=df,
        shared=int(counts.get("shared", 0)),
        only_a=int(counts.get("only_a", 0)),
        only_b=int(counts.get("only_b", 0)),
    )


def jaccard_matrix(sets: dict[str, set[str]]) -> pd.DataFrame:
    """Pairwise |A ∩ B| / |A ∪ B| (1.0 on the diagonal, and for two empty sets)."""
    names = list(sets)
    data = [
        [len(sets[x] & sets[y]) / len(sets[x] | sets[y]) if sets[x] | sets[y] else 1.0 for y in names]
        for x in names
    ]
    return pd.DataFrame(data, index=names, columns=names)


def compare_group(store: Store, pattern: str) -> GroupComparison:
    """Feature frequency and pairwise similarity over every circuit whose prompt matches ``pattern``."""
    rows = run(store, "compare-group", {"pattern": pattern, "limit": 10_000_000})
    if rows.empty:
        raise QueryError(
            f"no circuit's prompt matches {pattern!r} (the pattern must match the whole text)",
            "try a wider regular expression, e.g. '.*\\(.*'; `scd query circuits` lists the prompts",
        )
    circuits = (
        rows.groupby(["circuit", "prompt"], sort=False)
        .size()
        .rename("features")
        .reset_index()
        .sort_values(["prompt", "circuit"], kind="stable")
        .reset_index(drop=True)
    )
    n = len(circuits)
    freq = (
        rows.groupby("feature", sort=False)
        .agg(
            kind=("kind", "first"),
            layer=("layer", "first"),
            promotes=("promotes", "first"),
            circuits=("circuit", "nunique"),
            mean_attribution=("attribution", "mean"),
        )
        .reset_index()
    )
    freq.insert(5, "share", freq["circuits"] / n)
    freq = freq.sort_values(["circuits", "feature"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )
    sets = {str(c): set(g["feature"]) for c, g in rows.groupby("circuit", sort=False)}
    sets = {c: sets[c] for c in circuits["circuit"]}
    return GroupComparison(
        pattern=pattern, circuits=circuits, frequency=freq, similarity=jaccard_matrix(sets)
    )


def compare(
    store: Store, prompts: Sequence[str] = (), pattern: str | None = None
) -> CircuitComparison | GroupComparison:
    """Two circuits (``prompts`` = two prompt texts, prompt ids or circuit ids) or a group (``pattern``); what
    `scd compare` prints through ``.sections()`` and ``.summary()``. InputError unless exactly one is given."""
    if (pattern is not None and prompts) or (pattern is None and len(prompts) != 2):
        raise InputError(
            "give two prompts, or --pattern REGEX", 'e.g. scd compare "ab (cd [e {fg" "x = [1, 2, [3, 4"'
        )
    if pattern is None:
        return compare_circuits(store, prompts[0], prompts[1])
    return compare_group(store, pattern)
