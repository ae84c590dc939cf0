"""Where the graph lives: one rule for every command.

``--neo4j URI`` (or ``SCD_NEO4J_URI``, with ``SCD_NEO4J_USER``, ``SCD_NEO4J_PASSWORD``, ``SCD_NEO4J_DATABASE``)
selects a Neo4j server; otherwise the embedded LadybugDB store at ``--store PATH`` (default ``./scd-store``).
Secrets come from the environment only, never from flags that land in shell history; a login written into the URI
(``bolt://user:pw@host``) is taken out of it (scd.core.secrets), so no message or log repeats it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from scd.core.secrets import remember, split_credentials

DEFAULT_STORE = "scd-store"
# how long the Neo4j driver retries a transaction whose server is gone or busy before it gives up
NEO4J_RETRY_S = 60.0


@dataclass(frozen=True)
class StoreConfig:
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: str | None = field(default=None, repr=False)  # never in a repr, a log or a traceback
    neo4j_database: str = "neo4j"
    path: Path = Path(DEFAULT_STORE)

    def __post_init__(self) -> None:
        # a login inside the URI moves to user/password, so the URI can be printed (scd.core.secrets)
        if self.neo4j_uri:
            uri, user, password = split_credentials(self.neo4j_uri)
            if uri != self.neo4j_uri:
                object.__setattr__(self, "neo4j_uri", uri)
                if user:
                    object.__setattr__(self, "neo4j_user", user)
                if password is not None:
                    object.__setattr__(self, "neo4j_password", password)
        remember(self.neo4j_password)

    @property
    def kind(self) -> str:
        return "neo4j" if self.neo4j_uri else "embedded"

    def describe(self) -> str:
        if self.neo4j_uri:
            return f"neo4j {self.neo4j_uri} (database {self.neo4j_database})"
        return f"embedded LadybugDB at {self.path.resolve()}"

    @classmethod
    def resolve(cls, neo4j: str | None = None, store: str | Path | None = None) -> StoreConfig:
        env = os.environ
        uri = neo4j or env.get("SCD_NEO4J_URI") or None
        return cls(
            neo4j_uri=uri,
            neo4j_user=env.get("SCD_NEO4J_USER", "neo4j"),
            neo4j_password=env.get("SCD_NEO4J_PASSWORD"),
            neo4j_database=env.get("SCD_NEO4J_DATABASE", "neo4j"),
            path=Path(store or env.get("SCD_STORE") or DEFAULT_STORE),
        )
