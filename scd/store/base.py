"""The small interface both graph stores implement. Only the classes in scd/store know a database."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Self

from scd.core.circuit import Circuit
from scd.core.errors import QueryError
from scd.store.aggregates import FOLD_TX_EDGES, FoldReport

if TYPE_CHECKING:
    import pandas as pd  # imported where a frame is built: `scd store stats` never pays for pandas


class OutdatedStore(QueryError):
    """A read names a column this scd's schema has and the store's tables lack: an embedded store an older scd
    wrote, whose tables gain the column on their next write (reads never alter tables)."""


class Store(ABC):
    kind: str  # "neo4j" | "embedded"
    writers: int = 1  # circuits the ingest pipeline writes at once (threads calling write_prepared)
    # ``read`` may be called from several threads at once, each read on its own connection (the query runner
    # then computes a summary line beside the rows, scd.queries.runner.run)
    concurrent_reads: bool = False

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create constraints / tables idempotently (safe to call on every open)."""

    @abstractmethod
    def has_circuit(self, circuit_id: str) -> bool:
        """True if the circuit is completely in the store (it is written in one transaction, so any is all)."""

    @abstractmethod
    def has_request(self, request: str) -> bool:
        """True if a circuit written for this ingest request key (see scd.ingest.pipeline) is in the store."""

    def write_circuit(self, circuit: Circuit, *, request: str | None = None) -> bool:
        """Write prompt, circuit, nodes and edges in ONE transaction, merging shared Features (Neo4j commits a
        circuit's new Features just before, see scd.store.neo4j). Returns False (and writes nothing) if the circuit is
        already there. ``request`` is recorded on the Circuit (so a rerun can skip the prompt before discovering
        it)."""
        return self.write_prepared(self.prepare(circuit, request=request))

    @abstractmethod
    def prepare(self, circuit: Circuit, *, request: str | None = None) -> Any:
        """Everything a write needs that is not the database's work: rows, checks (InputError on a circuit that
        contradicts itself), encodings. Split from ``write_prepared`` so a pipeline can prepare the next circuit
        while the database writes this one."""

    @abstractmethod
    def write_prepared(self, prepared: Any) -> bool:
        """``write_circuit`` for what ``prepare`` returned."""

    @abstractmethod
    def pending(self) -> int:
        """How many circuits are not yet folded into the pre-aggregated layer (scd.store.aggregates)."""

    @abstractmethod
    def fold(self, *, max_edges: int = FOLD_TX_EDGES, rebuild: bool = False) -> FoldReport:
        """Fold every pending circuit into the pre-aggregated layer, ``max_edges`` edges per transaction.
        ``rebuild``: first drop the layer and mark every circuit pending (recomputes it from the FEEDS edges)."""

    @abstractmethod
    def set_feature_cards(
        self, rows: list[dict[str, Any]], features: list[dict[str, Any]] | None = None
    ) -> int:
        """Set label, frequency, max_activation, top_contexts, top_activations on the Features named by
        ``rows[i]["id"]`` (scd.discovery.labels); returns how many Features got a card. ``features``: Feature rows
        (scd.store.rows.feature_row) to create first where the store lacks them, as a circuit write would (a
        stored Feature keeps its metadata), so every latent gets a card. One transaction."""

    @abstractmethod
    def read(
        self, cypher: str, params: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> pd.DataFrame:
        """Run a read-only query with parameters; refuse (QueryError) anything the allow-list of scd.store.gate
        does not accept, and anything that writes by the database's own verdict. Nodes and relationships come back as dicts of their properties plus ``_label`` (label or
        relationship type); paths as ``{"nodes": [...], "relationships": [...]}``. ``timeout`` in seconds."""

    def read_folded(self, cypher: str, fallback: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """``cypher`` reads the pre-aggregated layer and ``fallback`` gives the same rows from the FEEDS edges:
        run ``cypher`` while no circuit is pending for that layer, else ``fallback``, so an answer never misses
        a stored circuit. Backends may do both in fewer round trips (scd.store.neo4j). ``df.attrs["folded"]``
        says which answered (True: ``cypher``), so a caller needs no second look at the pending count."""
        folded = self.pending() == 0
        df = self.read(cypher if folded else fallback, params)
        df.attrs["folded"] = folded
        return df

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Counts by node label and relationship type."""

    def is_empty(self) -> bool:
        """True if the store holds none of scd's nodes (what an empty answer checks before blaming the store)."""
        return not any(self.stats().values())

    @abstractmethod
    def clear(self) -> None:
        """Delete everything (schema stays)."""

    @abstractmethod
    def describe(self) -> str:
        """One line: what this store is and where."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_POSITION = re.compile(r"\(line:? 1, (column (\d+) \(offset: (\d+)\)|offset: (\d+))\)")


def engine_message(message: str, *, prefix: str = "") -> str:
    """An engine's error message as one line: its first line, which names the problem and its position; the
    query echo and caret lines that follow are dropped. ``prefix`` is text scd put before the user's query
    (Neo4j's ``EXPLAIN ``): line 1's column and offset are moved back by its length, to point into the query
    the user wrote."""
    first = message.strip().split("\n", 1)[0]
    if not prefix:
        return first

    def shift(m: re.Match[str]) -> str:
        if m.group(2) is not None:
            column, offset = int(m.group(2)) - len(prefix), int(m.group(3)) - len(prefix)
            return f"(line 1, column {column} (offset: {offset}))"
        return f"(line: 1, offset: {int(m.group(4)) - len(prefix)})"

    return _POSITION.sub(shift, first)
