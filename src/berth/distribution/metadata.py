"""Which registry blob each local layer was pulled from or pushed as (Docker's
"v2metadata"): a layer is kept as its plain tar (its diff ID), a registry holds it
compressed under another digest. Knowing the pair lets a push answer "Layer already
exists" with one HEAD, or mount the blob from another repository of the same
registry, instead of compressing and uploading the layer again.

One table, `layer_sources`, in the metadata database, with its migrations. It is a
cache: a row that is wrong (the registry deleted the blob) costs one HEAD, never a
wrong push, because every use is checked against the registry first.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from berth.metadata import Step, migrate

MIGRATIONS: list[Step] = [
    ["CREATE TABLE IF NOT EXISTS layer_sources ("
     " diff_id    TEXT NOT NULL,"
     " digest     TEXT NOT NULL,"
     " size       INTEGER NOT NULL,"
     " media_type TEXT NOT NULL,"
     " repository TEXT NOT NULL,"  # normalized name: localhost:5000/team/app
     " PRIMARY KEY (diff_id, digest, repository))"],
]


@dataclass(frozen=True)
class LayerSource:
    diff_id: str
    digest: str
    size: int
    media_type: str
    repository: str

    @property
    def domain(self) -> str:
        return self.repository.split("/", 1)[0]

    @property
    def path(self) -> str:
        return self.repository.split("/", 1)[1]


class LayerSources:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        migrate(db, "distribution", MIGRATIONS)

    def add(self, source: LayerSource) -> None:
        self.db.execute("INSERT OR REPLACE INTO layer_sources VALUES (?,?,?,?,?)",
                        (source.diff_id, source.digest, source.size, source.media_type, source.repository))

    def of_layer(self, diff_id: str, domain: str) -> list[LayerSource]:
        """What layer `diff_id` is known as on registry `domain`, in any repository."""
        rows = self.db.execute("SELECT diff_id, digest, size, media_type, repository FROM layer_sources "
                               "WHERE diff_id=? AND substr(repository, 1, ?)=?",
                               (diff_id, len(domain) + 1, domain + "/"))
        return [LayerSource(*row) for row in rows]

    def forget(self, digest: str, repository: str) -> None:
        self.db.execute("DELETE FROM layer_sources WHERE digest=? AND repository=?", (digest, repository))
