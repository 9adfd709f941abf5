"""The one store factory of mlipflow.

Embedded (default): maggma ``MontyStore`` collections (montydb on disk, Mongo query syntax,
safe across processes) and, for blobs, a key-indexed SQLite table (:mod:`mlipflow.keystore`:
montydb decodes every document of a collection on each query). With ``database.uri`` set: ``MongoURIStore`` documents and a
``GridFSURIStore`` for blobs. Both go through the same functions:

* :func:`job_store` — the jobflow ``JobStore`` (job outputs + ``data`` blob store for
  trajectories, models and datasets) used by ``run_locally`` and FireWorks.
* :func:`collection` — a named maggma store for mlipflow's own collections (e.g. the
  labeled-frame cache keyed by content hash).
"""

from __future__ import annotations

import functools
import urllib.parse
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlipflow.settings import Settings, get_settings

if TYPE_CHECKING:  # imported when used: read-only commands need neither jobflow nor maggma's core at import
    from jobflow import JobStore
    from maggma.core import Store

#: Output fields that jobflow moves to the blob store (``additional_stores={"data": ...}``).
BLOB_STORE = "data"


def _mongo_uri(settings: Settings) -> str:
    db = settings.database
    uri = db.uri
    assert uri
    if db.username and "@" not in uri:
        user = urllib.parse.quote_plus(db.username)
        pw = urllib.parse.quote_plus(db.password.get_secret_value()) if db.password else ""
        scheme, rest = uri.split("://", 1)
        uri = f"{scheme}://{user}:{pw}@{rest}"
    params = {}
    if db.username:
        params["authSource"] = db.auth_source
    if db.tls:
        params["tls"] = "true"
        if db.tls_ca_file:
            params["tlsCAFile"] = str(db.tls_ca_file)
    if params:
        sep = "&" if "?" in uri else "?"
        uri = uri + sep + urllib.parse.urlencode(params)
    return uri


@functools.cache
def _embedded_store_class():
    from maggma.stores.mongolike import MontyStore

    class EmbeddedStore(MontyStore):
        """maggma's MontyStore, but montydb's storage configuration is written once, atomically.

        MontyStore rewrites ``monty.storage.cfg`` on every connect (truncate, then write); another
        process opening the store at that moment reads an empty file and fails ("No module named
        'montydb.storage.'"): seen with jobs running side by side in their own processes
        (jobflow-remote's local workers, FireWorks rapidfire with several workers)."""

        def connect(self, force_reset: bool = False):
            import os
            import tempfile

            from montydb import MontyClient, set_storage

            if not self._coll or force_reset:
                cfg = Path(self.database_path) / "monty.storage.cfg"
                if not cfg.is_file():
                    with tempfile.TemporaryDirectory(dir=self.database_path) as tmp:
                        set_storage(tmp, storage=self.storage, **self.storage_kwargs)
                        # montydb's files (the config and its `.monty.storage` marker), the config last
                        for f in sorted(Path(tmp).iterdir(), key=lambda f: f.name == cfg.name):
                            os.replace(f, Path(self.database_path) / f.name)
                client = MontyClient(self.database_path, **self.client_kwargs)
                self._coll = client[self.database_name][self.collection_name]

    EmbeddedStore.__module__ = __name__
    EmbeddedStore.__qualname__ = "EmbeddedStore"
    return EmbeddedStore


def __getattr__(name: str):
    if name == "EmbeddedStore":  # made on first use: importing maggma.stores costs ~0.7 s
        return _embedded_store_class()
    raise AttributeError(name)


def collection(name: str, settings: Settings | None = None, key: str = "uuid") -> Store:
    """A document collection named ``name`` in the configured database (not yet connected)."""
    settings = settings or get_settings()
    db = settings.database
    if db.embedded:
        path = settings.store_path
        path.mkdir(parents=True, exist_ok=True)
        return _embedded_store_class()(
            collection_name=name, database_path=str(path), database_name=db.database, key=key,
            storage="sqlite",
        )
    from maggma.stores.mongolike import MongoURIStore

    with _quiet():
        return MongoURIStore(uri=_mongo_uri(settings), database=db.database, collection_name=name, key=key,
                             mongoclient_kwargs=_client_kwargs(settings))


def keyed_collection(name: str, settings: Settings | None = None, key: str = "uuid") -> Store:
    """A collection read almost only by ``key`` (blobs, the cache): embedded, a key-indexed SQLite
    table (:mod:`mlipflow.keystore`); with MongoDB, the same collection as :func:`collection`."""
    settings = settings or get_settings()
    if not settings.database.embedded:
        return collection(name, settings, key=key)
    from mlipflow.keystore import KeyedSqliteStore

    path = settings.store_path
    path.mkdir(parents=True, exist_ok=True)
    return KeyedSqliteStore(str(path), collection_name=name, key=key, legacy_database=settings.database.database)


def _client_kwargs(settings: Settings) -> dict:
    ms = int(settings.database.timeout_s * 1000)
    return {"serverSelectionTimeoutMS": ms, "connectTimeoutMS": ms}


@contextmanager
def _quiet():
    """maggma's URI stores warn that they are deprecated on every construction; not the user's concern."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def blob_store(settings: Settings | None = None) -> Store:
    """Store for large objects: a montydb collection (embedded) or GridFS (MongoDB)."""
    settings = settings or get_settings()
    db = settings.database
    if db.embedded:
        return keyed_collection(db.blob_collection, settings, key="blob_uuid")
    from maggma.stores.gridfs import GridFSURIStore

    with _quiet():
        return GridFSURIStore(
            uri=_mongo_uri(settings), database=db.database, collection_name=db.blob_collection,
            key="blob_uuid", mongoclient_kwargs=_client_kwargs(settings),
        )


def job_store(settings: Settings | None = None) -> JobStore:
    """The jobflow JobStore: outputs collection plus the ``data`` blob store."""
    from jobflow import JobStore

    settings = settings or get_settings()
    return JobStore(
        collection(settings.database.collection, settings),
        additional_stores={BLOB_STORE: blob_store(settings)},
    )


def current_store() -> JobStore:
    """The store of the running jobflow job, else mlipflow's configured job store (connected)."""
    from jobflow import CURRENT_JOB

    store = getattr(CURRENT_JOB, "store", None)
    if store is None:
        store = job_store()
        store.connect()
    return store


def describe(settings: Settings | None = None) -> str:
    """Where documents go, without secrets."""
    from mlipflow.settings import redact_uri

    settings = settings or get_settings()
    if settings.database.embedded:
        return f"embedded montydb at {settings.store_path} (database {settings.database.database!r})"
    return f"MongoDB {redact_uri(settings.database.uri or '')} (database {settings.database.database!r})"


def query_outputs(
    criteria: dict[str, Any] | None = None,
    doc_type: str | None = None,
    campaign: str | None = None,
    limit: int = 0,
    settings: Settings | None = None,
    load_blobs: bool = False,
) -> list[dict[str, Any]]:
    """Job output documents matching a Mongo query (``output.*`` fields), newest first."""
    crit = dict(criteria or {})
    if doc_type:
        crit["output.type"] = doc_type
    if campaign:
        crit["output.campaign"] = campaign
    settings = settings or get_settings()
    if not load_blobs and settings.database.embedded:
        # read-only commands (query, status, report): montydb directly — what maggma's MontyStore
        # reads, without importing maggma.stores (boto3, paramiko, pymongo: ~0.7 s of start-up)
        from montydb import MontyClient

        path = settings.store_path
        if not (path / "monty.storage.cfg").is_file():
            return []  # nothing stored yet
        coll = MontyClient(str(path))[settings.database.database][settings.database.collection]
        return list(coll.find(crit, sort=[("completed_at", -1)], limit=limit))
    if load_blobs:
        store = job_store(settings)
        query = {"load": True}
    else:  # the outputs collection alone: what JobStore.query(load=False) reads, without importing jobflow
        store = collection(settings.database.collection, settings)
        query = {}
    store.connect()
    try:
        docs = list(store.query(criteria=crit, sort={"completed_at": -1}, limit=limit, **query))
    finally:
        store.close()
    return docs


def reset_embedded_store(path: Path) -> None:
    """Delete an embedded store directory (tests and `mlipflow run --fresh`)."""
    import shutil

    if path.exists():
        shutil.rmtree(path)
