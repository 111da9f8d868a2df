"""Where network records are kept: the `NetworkStore` interface and its SQLite back end.

The controller keeps networks through this interface only, so that swarm's cluster
store can later hold the cluster-scoped ones (overlay) while the local ones stay here.
This module owns the `networks` table (id, name, doc: the record as JSON); its name and
columns are those of every earlier data root, which therefore opens unchanged. It knows
nothing of drivers, addresses or containers.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from typing import Any, Protocol

from berth.metadata import Step, migrate
from berth.network.model import Network, SubnetConfig

MIGRATIONS: list[Step] = [
    # 1: the schema of 623d42e, which made every table at once
    ["CREATE TABLE IF NOT EXISTS networks ("
     " id   TEXT PRIMARY KEY,"
     " name TEXT NOT NULL UNIQUE,"
     " doc  TEXT NOT NULL)"],
]


class NetworkStore(Protocol):
    """Network records by ID. Writes are durable when the call returns."""

    def load(self) -> list[Network]:
        """Every record kept."""
        ...

    def save(self, n: Network) -> None:
        """Adds `n`, or replaces the record with its ID."""
        ...

    def delete(self, network_id: str) -> None:
        """Forgets the record (nothing when there is none)."""
        ...


class SqliteNetworkStore:
    """The local store: one row per network in berthd's SQLite metadata database."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        migrate(db, "networks", MIGRATIONS)

    def load(self) -> list[Network]:
        return [network_from_doc(json.loads(doc)) for (doc,) in self.db.execute("SELECT doc FROM networks")]

    def save(self, n: Network) -> None:
        self.db.execute("INSERT OR REPLACE INTO networks VALUES (?,?,?)", (n.id, n.name, json.dumps(asdict(n))))

    def delete(self, network_id: str) -> None:
        self.db.execute("DELETE FROM networks WHERE id=?", (network_id,))


def network_from_doc(doc: dict[str, Any]) -> Network:
    """A record from its JSON document (fields it does not know are dropped)."""
    doc = dict(doc)
    subnets = [SubnetConfig(**s) for s in doc.pop("subnets", [])]
    return Network(**{k: v for k, v in doc.items() if k in Network.__dataclass_fields__}, subnets=subnets)
