"""The embedded store's keyed collections (blobs, the cache): a key-indexed SQLite table.

jobflow moves large output fields (trajectories, models, datasets) into an additional store and
reads them back with ``{"blob_uuid": {"$in": [...]}}``. montydb answers every query by decoding
every document of the collection, so with a few hundred trajectory blobs each lookup decoded
hundreds of megabytes: the mini glass campaign spent 70 % of its time in BSON decoding. Here the
key is the table's primary key; documents are BSON, decoded only when asked for. Other criteria
(rare: ``job_uuid`` on removal) use montydb's own query filter over a scan. The cache's document
entries (looked up by ``cache_id``) live in one too.

Safe across processes (SQLite locking, WAL journal); a write is one transaction, so a kill never
leaves a half blob. A store directory written by an earlier mlipflow (these collections inside
montydb) is copied over once, on the first connect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import bson
from maggma.core import Sort, Store


class KeyedSqliteStore(Store):
    """A maggma Store of documents keyed by one field, in ``<path>/<collection_name>.sqlite``."""

    def __init__(self, path: str, collection_name: str = "blobs", key: str = "blob_uuid",
                 legacy_database: str | None = None, **kwargs):
        self.path = str(path)
        self.collection_name = collection_name
        self.legacy_database = legacy_database
        self.kwargs = kwargs
        self._conn: sqlite3.Connection | None = None
        super().__init__(key=key, **kwargs)

    # -- maggma Store interface -------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"sqlite://{self.file}"

    @property
    def file(self) -> Path:
        return Path(self.path) / f"{self.collection_name}.sqlite"

    @property
    def _collection(self):
        if self._conn is None:
            raise RuntimeError("KeyedSqliteStore is not connected; call connect() first")
        return self._conn

    def connect(self, force_reset: bool = False) -> None:
        if self._conn is not None and not force_reset:
            return
        self.close()
        self.file.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.file, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS docs (key TEXT PRIMARY KEY, doc BLOB NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        self._conn = conn
        if self.legacy_database and not conn.execute("SELECT 1 FROM meta WHERE name = 'legacy_copied'").fetchone():
            self._copy_legacy()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def count(self, criteria: dict | None = None, hint: dict | None = None) -> int:
        if not criteria:
            return self._collection.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
        return sum(1 for _ in self.query(criteria))

    def query(self, criteria: dict | None = None, properties: dict | list | None = None,
              sort: dict[str, Sort | int] | None = None, hint: dict | None = None, skip: int = 0,
              limit: int = 0) -> Iterator[dict]:
        docs = self._select(criteria or {})
        for k, direction in reversed(list((sort or {}).items())):  # stable passes, last key first
            # Mongo order: missing/null first when ascending, last when descending
            docs = iter(sorted(docs, key=lambda d, k=k: (_get(d, k) is not None, _get(d, k)),
                               reverse=int(getattr(direction, "value", direction)) < 0))
        n = 0
        for i, doc in enumerate(docs):
            if i < skip:
                continue
            if limit and n >= limit:
                return
            n += 1
            yield _project(doc, properties)

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        if isinstance(docs, dict):
            docs = [docs]
        key = key or self.key
        if (key if isinstance(key, str) else list(key)) not in (self.key, [self.key]):
            raise ValueError(f"KeyedSqliteStore is keyed by {self.key!r}, not {key!r}")
        rows = []
        for d in docs:
            d = dict(d)
            d.setdefault(self.last_updated_field, datetime.now(timezone.utc))
            rows.append((str(d[self.key]), bson.encode(d)))
        with self._collection:  # one transaction: all or nothing
            self._collection.executemany("INSERT OR REPLACE INTO docs (key, doc) VALUES (?, ?)", rows)

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        return key == self.key

    def groupby(self, keys, criteria=None, properties=None, sort=None, skip=0, limit=0):
        raise NotImplementedError("KeyedSqliteStore holds blobs; group the documents of the outputs collection")

    def remove_docs(self, criteria: dict) -> None:
        keys = [str(d[self.key]) for d in self.query(criteria, properties=[self.key])]
        with self._collection:
            self._collection.executemany("DELETE FROM docs WHERE key = ?", [(k,) for k in keys])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeyedSqliteStore) and (self.file, self.key) == (other.file, other.key)

    def __hash__(self) -> int:
        return hash((str(self.file), self.key))

    # -- internals ----------------------------------------------------------------------------
    def _keys_of(self, criteria: dict) -> list[str] | None:
        """The keys a criteria names, if it selects by key alone (the fast path)."""
        if set(criteria) != {self.key}:
            return None
        v = criteria[self.key]
        if isinstance(v, dict):
            if set(v) == {"$in"}:
                return [str(x) for x in v["$in"]]
            if set(v) == {"$eq"}:
                return [str(v["$eq"])]
            return None
        return [str(v)]

    def _select(self, criteria: dict) -> Iterator[dict]:
        keys = self._keys_of(criteria)
        conn = self._collection
        if keys is not None:
            found = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                q = f"SELECT key, doc FROM docs WHERE key IN ({','.join('?' * len(chunk))})"
                found.update((k, bson.decode(v)) for k, v in conn.execute(q, chunk))
            return (found[k] for k in dict.fromkeys(keys) if k in found)
        from montydb.engine.queries import QueryFilter

        qf = QueryFilter(criteria)
        return (d for d in (bson.decode(v) for (v,) in conn.execute("SELECT doc FROM docs")) if qf(d))

    def _copy_legacy(self) -> None:
        """Documents an earlier mlipflow kept in this collection inside montydb: copied here once."""
        import logging

        legacy = Path(self.path) / self.legacy_database / f"{self.collection_name}.collection"
        n = 0
        if legacy.exists():
            from montydb import MontyClient

            client = MontyClient(self.path)
            try:
                batch = []
                for d in client[self.legacy_database][self.collection_name].find({}):
                    batch.append({k: v for k, v in d.items() if k != "_id"})
                    if len(batch) >= 50:
                        self.update(batch)
                        n += len(batch)
                        batch = []
                if batch:
                    self.update(batch)
                    n += len(batch)
            finally:
                client.close()
            logging.getLogger(__name__).info("copied %d documents of %s from montydb", n, self.collection_name)
        with self._collection:
            self._collection.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('legacy_copied', ?)", (str(n),))


def _get(doc: dict, dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _project(doc: dict, properties: dict | list | None) -> dict:
    if not properties:
        return doc
    fields = list(properties) if isinstance(properties, (list, tuple)) else [k for k, v in properties.items() if v]
    out: dict = {}
    for f in fields:
        v = _get(doc, f)
        if v is None and f.split(".")[0] not in doc:
            continue
        parts = f.split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return out
