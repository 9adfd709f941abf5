"""The one content-addressed cache of mlipflow.

Every job that caches goes through this module; nothing else writes under
``<data_dir>/cache``. One key rule, two kinds of entries:

* **key** — :func:`cache_key` ``(kind, *inputs)``: the SHA-256 of the canonical JSON of the entry
  kind, this cache's schema, mlipflow's version and every input that changes the result (structure,
  protocol, engine, potential reference, settings...). A caller that leaves an input out of the key
  gets someone else's result: callers pass whole models (protocols, settings, references), not
  selected fields.
* **directory entries** (:func:`directory`, :func:`cached_directory`) — files: pacemaker fits,
  materialised potentials, LAMMPS work directories. Built under an exclusive lock; a completion
  marker, written last by an atomic rename, holds the key. A directory without a matching marker
  is invisible: it is emptied and rebuilt, so a killed build is never returned.
* **document entries** (:func:`get_or_compute`) — results: explorations, MD runs, AIMD
  trajectories (their frame ids). One store collection ``cache``, one document per key, written
  once after the computation finished (a single insert: a kill leaves no half entry).

Labels themselves live in the frames repository, addressed by ``frame_id`` (the content hash of
structure, labeler and its settings — not mlipflow's version, so a code update never throws
away days of VASP labels).

:data:`STATS` counts hits and computations per kind in this process (run summaries report them).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from mlipflow import __version__

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Bump when the meaning of cached entries changes (part of every key).
CACHE_SCHEMA = "2"
#: Name of the completion marker inside a directory entry.
MARKER = ".mlipflow-complete.json"
#: Store collection of document entries.
COLLECTION = "cache"


@dataclass
class CacheStats:
    """Hits and computations per entry kind (this process)."""

    hits: Counter = field(default_factory=Counter)
    computed: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"hits": dict(self.hits), "computed": dict(self.computed)}

    def reset(self) -> None:
        self.hits.clear()
        self.computed.clear()


STATS = CacheStats()


def cache_key(kind: str, *inputs: Any) -> str:
    """The key of an entry of ``kind`` computed from ``inputs`` (models, dicts, arrays, paths' digests)."""
    from mlipflow.schemas.base import content_hash

    return content_hash("mlipflow-cache", CACHE_SCHEMA, __version__, kind, *inputs)


def cache_root() -> Path:
    from mlipflow.settings import get_settings

    return Path(get_settings().data_dir).expanduser() / "cache"


# ----------------------------------------------------------------------------- directories


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_complete(path: str | Path, key: str) -> bool:
    """Whether ``path`` holds a finished entry for ``key``."""
    marker = Path(path) / MARKER
    try:
        return json.loads(marker.read_text()).get("key") == key
    except (OSError, ValueError):
        return False


def _mark_complete(path: Path, key: str, kind: str) -> None:
    tmp = path / (MARKER + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"key": key, "kind": kind, "created_at": datetime.now(timezone.utc).isoformat(),
                               "mlipflow": __version__}))
    os.replace(tmp, path / MARKER)


def directory(path: str | Path, key: str, build: Callable[[Path], T], load: Callable[[Path], T] | None = None,
              kind: str = "directory", clear: bool = True) -> T:
    """The entry at ``path`` for ``key``: ``load(path)`` if it is complete, else ``build(path)``.

    ``build`` writes into ``path`` and returns the result; the marker is written after it returns.
    An incomplete or stale directory is emptied first (``clear=False`` keeps its files, for
    builders that resume from what they find, e.g. a restart file).
    """
    path = Path(path).resolve()
    with _locked(path):
        if is_complete(path, key):
            STATS.hits[kind] += 1
            log.info("%s %s…: from the cache", kind, key[:12])
            return load(path) if load is not None else path  # type: ignore[return-value]
        if path.exists() and clear:
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / MARKER).unlink(missing_ok=True)
        result = build(path)
        _mark_complete(path, key, kind)
        STATS.computed[kind] += 1
        return result


def cached_directory(kind: str, key_inputs: Sequence[Any], build: Callable[[Path], T],
                     load: Callable[[Path], T] | None = None, clear: bool = True) -> T:
    """:func:`directory` at ``<data_dir>/cache/<kind>/<key>`` with the key from ``key_inputs``."""
    key = cache_key(kind, *key_inputs)
    return directory(cache_root() / kind / key[:24], key, build, load, kind=kind, clear=clear)


def entry_path(kind: str, key_inputs: Sequence[Any]) -> Path:
    """Where :func:`cached_directory` puts the entry of ``key_inputs`` (complete or not)."""
    return cache_root() / kind / cache_key(kind, *key_inputs)[:24]


# ----------------------------------------------------------------------------- documents


def _collection():
    from mlipflow.store import keyed_collection

    return keyed_collection(COLLECTION, key="cache_id")


def lookup(kind: str, key_inputs: Sequence[Any]) -> Any | None:
    """The stored value of a document entry, or None."""
    key = cache_key(kind, *key_inputs)
    store = _collection()
    store.connect()
    try:
        doc = store.query_one({"cache_id": f"{kind}:{key}"})
    finally:
        store.close()
    return None if doc is None else doc.get("value")


def get_or_compute(kind: str, key_inputs: Sequence[Any], compute: Callable[[], T],
                   encode: Callable[[T], Any] | None = None, decode: Callable[[Any], T] | None = None) -> T:
    """The cached value of ``kind`` for ``key_inputs``, else ``compute()`` stored and returned.

    ``encode`` turns the result into JSON-able data (default: ``model_dump(mode="json")`` for
    pydantic models), ``decode`` turns stored data back (default: identity).
    """
    key = cache_key(kind, *key_inputs)
    cid = f"{kind}:{key}"
    store = _collection()
    store.connect()
    try:
        doc = store.query_one({"cache_id": cid})
        if doc is not None:
            STATS.hits[kind] += 1
            log.info("%s %s…: from the cache", kind, key[:12])
            value = doc["value"]
            return decode(value) if decode is not None else value
        result = compute()
        value = encode(result) if encode is not None else (
            result.model_dump(mode="json") if hasattr(result, "model_dump") else result)
        store.update([{"cache_id": cid, "kind": kind, "key": key, "value": value,
                       "created_at": datetime.now(timezone.utc).isoformat(), "mlipflow": __version__}])
        STATS.computed[kind] += 1
        return result
    finally:
        store.close()
