"""What a store holds: counts by node label and relationship type, and circuits waiting for the fold.

``stats(store)`` is what `scd store stats` prints through scd.queries.render.render_sections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from scd.store.schema import LABELS

if TYPE_CHECKING:
    from scd.store.base import Store


@dataclass
class StoreStats:
    store: str  # Store.describe()
    counts: dict[str, int]  # by label and relationship type, in schema order
    pending_fold: int  # circuits not yet in the aggregate layer

    def summary(self) -> dict[str, object]:
        return {"store": self.store, "pending_fold": self.pending_fold}

    def sections(self) -> dict[str, pd.DataFrame]:
        rows = [("label" if name in LABELS else "relationship", name, n) for name, n in self.counts.items()]
        return {"counts": pd.DataFrame(rows, columns=["kind", "name", "count"])}


def stats(store: Store) -> StoreStats:
    """Counts and pending circuits of an open store."""
    return StoreStats(store=store.describe(), counts=store.stats(), pending_fold=store.pending())
