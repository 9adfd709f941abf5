"""The frame store and versioned datasets: everything here talks to the store.

* Frames live in the ``frames`` collection (:func:`mlipflow.store.collection`), keyed by
  ``frame_id`` (content hash of structure + labeler settings) — the label cache shared by all
  processes. :func:`save_frames` / :func:`load_frames` read and write it;
  :func:`save_trajectory` / :func:`load_trajectory` keep the ordered frame ids of a labeled
  trajectory in the ``trajectories`` collection.
* :func:`build_dataset` makes a new *version* of a named dataset in the ``datasets``
  collection: only ``ok`` frames, identical structures removed, a seeded random or
  by-composition train/test split, the isolated-atom reference energies.
  :func:`list_datasets`, :func:`load_dataset` and :func:`record_export` read and annotate them.

Lookups by primary key go through :func:`_docs_by_id`, the one place that knows which store
back-end it is talking to (see there).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlipflow.engines.frames import _energy_corrected, _frame_from_doc, structure_hash
from mlipflow.errors import UserError
from mlipflow.schemas import DatasetDoc, FrameStatus, LabeledFrame, content_hash

log = logging.getLogger(__name__)

FRAMES_COLLECTION = "frames"
DATASETS_COLLECTION = "datasets"

_DATASET_FIELDS = set(DatasetDoc.model_fields)

# ----------------------------------------------------------------------------- lookups by primary key


def _docs_by_id(store, ids: Sequence[str], keys_only: bool = False) -> dict[str, Any]:
    """The stored documents with ``_id`` in ``ids``: ``{_id: document}`` (``{_id: True}`` with
    ``keys_only``); ids that are not stored are absent. ``store`` is a connected maggma store.

    The only function in this module that depends on the store back-end. An embedded montydb
    store on sqlite is read by primary key straight from its sqlite file
    (:class:`_MontySQLiteLookup`): montydb answers every query by decoding all documents, and
    a label-cache check must stay fast at 10⁴–10⁵ frames. Any other store (MongoDB, a montydb
    that is not on sqlite, a montydb version whose internals differ) gets the ordinary query
    ``{"_id": {"$in": ids}}`` on the store's collection, which MongoDB serves from its ``_id``
    index. Both give the same answer; documents are stored with ``_id`` = their key.
    """
    ids = list(dict.fromkeys(ids))
    fast = _MontySQLiteLookup.for_store(store)
    if fast is not None:
        return fast.lookup(ids, keys_only)
    if keys_only:
        return {d["_id"]: True for d in store._collection.find({"_id": {"$in": ids}}, {"_id": 1})}
    return {d["_id"]: d for d in store._collection.find({"_id": {"$in": ids}})}


@dataclass(frozen=True)
class _MontySQLiteLookup:
    """Primary-key reads from the sqlite file of an embedded montydb collection (internal to
    :func:`_docs_by_id`; nothing else should use it).

    It relies on montydb internals: the maggma store's ``_collection`` is a montydb collection
    whose ``_storage`` is a ``SQLiteStorage`` with a ``_repository`` directory; each collection
    is the sqlite file ``<repository>/<database>/<collection>.collection`` with a table
    ``documents(k, v)`` (``k`` = ``bson.id_encode(_id)``, ``v`` = the BSON document); and
    ``montydb.types.bson`` encodes ids and decodes documents. :meth:`for_store` returns None
    whenever the store is not such a collection, so the caller takes the portable query.
    """

    path: Path
    coll: Any

    @classmethod
    def for_store(cls, store) -> _MontySQLiteLookup | None:
        coll = getattr(store, "_collection", None)
        storage = getattr(coll, "_storage", None)
        if coll is None or type(storage).__name__ != "SQLiteStorage":
            return None
        try:
            path = Path(storage._repository) / coll.database.name / f"{coll.name}.collection"
        except AttributeError:  # pragma: no cover - other montydb versions
            return None
        return cls(path, coll)

    def lookup(self, ids: Sequence[str], keys_only: bool = False) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        import sqlite3

        from montydb.types import bson

        enc = {bson.id_encode(i): i for i in ids}
        keys = list(enc)
        out: dict[str, Any] = {}
        con = sqlite3.connect(str(self.path), timeout=60)
        try:
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                marks = ",".join("?" * len(chunk))
                if keys_only:
                    for (k,) in con.execute(f"SELECT k FROM documents WHERE k IN ({marks})", chunk):
                        out[enc[bytes(k) if not isinstance(k, bytes) else k]] = True
                else:
                    for (v,) in con.execute(f"SELECT v FROM documents WHERE k IN ({marks})", chunk):
                        d = bson.document_decode(v, codec_options=self.coll.codec_options)
                        out[d["_id"]] = d
        finally:
            con.close()
        return out


# ----------------------------------------------------------------------------- frames


def frames_store(settings=None):
    """The (unconnected) frame-cache collection, keyed by ``frame_id``."""
    from mlipflow.store import collection

    return collection(FRAMES_COLLECTION, settings, key="frame_id")


def save_frames(frames: Sequence[LabeledFrame], replace: bool = False, store=None) -> int:
    """Write frames to the ``frames`` collection; returns how many were written.

    Frames already stored (same ``frame_id``) are left alone unless ``replace``.
    Documents carry ``_id = frame_id`` (primary-key lookups in montydb and MongoDB).
    """
    frames = list(frames)
    if not frames:
        return 0
    own = store is None
    store = store or frames_store()
    if own:
        store.connect()
    try:
        ids = list(dict.fromkeys(f.frame_id for f in frames))
        existing = set(_docs_by_id(store, ids, keys_only=True))
        new_docs, replaced, seen = [], 0, set()
        for f in frames:
            if f.frame_id in seen:
                continue
            seen.add(f.frame_id)
            doc = {"_id": f.frame_id, **f.model_dump(mode="json")}
            if f.frame_id in existing:
                if replace:
                    store._collection.replace_one({"_id": f.frame_id}, doc, upsert=True)
                    replaced += 1
                continue
            new_docs.append(doc)
        if new_docs:
            try:
                store._collection.insert_many(new_docs, ordered=False)
            except Exception:  # noqa: BLE001 - another process stored some of them meanwhile
                for doc in new_docs:
                    store._collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return len(new_docs) + replaced
    finally:
        if own:
            store.close()


def load_frames(frame_ids: Sequence[str] | None = None, criteria: dict | None = None, store=None) -> list[LabeledFrame]:
    """Frames by id (returned in the order of ``frame_ids``, missing ones skipped) or by query."""
    own = store is None
    store = store or frames_store()
    if own:
        store.connect()
    try:
        docs = None
        if frame_ids is not None and not criteria:
            docs = _docs_by_id(store, frame_ids)
        if docs is None:
            crit = dict(criteria or {})
            if frame_ids is not None:
                crit["frame_id"] = {"$in": list(frame_ids)}
            docs = {d["frame_id"]: d for d in store.query(crit)}
    finally:
        if own:
            store.close()
    if frame_ids is None:
        return [_frame_from_doc(d) for d in docs.values()]
    return [_frame_from_doc(docs[i]) for i in frame_ids if i in docs]


# ----------------------------------------------------------------------------- datasets


def _split(frames: list[LabeledFrame], method: str, test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    ids = [f.frame_id for f in frames]
    if method == "test":  # a test-only dataset (e.g. a campaign's fixed test set)
        return [], ids
    if not 0 <= test_fraction < 1:
        raise UserError(f"test_fraction must be in [0, 1) (got {test_fraction})", "use e.g. 0.1")
    if method == "random":
        n_test = int(round(test_fraction * len(ids)))
        if test_fraction > 0 and len(ids) > 1:
            n_test = max(1, n_test)
        order = rng.permutation(len(ids))
        test = {ids[i] for i in order[:n_test]}
    elif method == "composition":
        groups: dict[str, list[str]] = {}
        for f in frames:
            groups.setdefault(f.formula, []).append(f.frame_id)
        names = sorted(groups)
        order = rng.permutation(len(names))
        target = test_fraction * len(ids)
        test = set()
        for i in order:
            if len(test) >= target or len(test) + len(groups[names[i]]) >= len(ids):
                break
            test.update(groups[names[i]])
    else:
        raise UserError(f"unknown split {method!r}", "use 'random', 'composition' or 'test' (all frames test)")
    return [i for i in ids if i not in test], [i for i in ids if i in test]


def datasets_store(settings=None):
    from mlipflow.store import collection

    return collection(DATASETS_COLLECTION, settings, key="dataset_key")


def _dataset_versions(name: str, store) -> list[int]:
    return sorted(int(d["version"]) for d in store.query({"name": name}, properties=["version"]))


def _parse_parent(parent) -> tuple[str, int | None]:
    if isinstance(parent, DatasetDoc):
        return parent.name, parent.version
    name, _, ver = str(parent).partition(":")
    return name, int(ver) if ver else None


def build_dataset(
    name: str,
    frames: Sequence[LabeledFrame],
    split: str = "random",
    test_fraction: float = 0.1,
    seed: int = 0,
    reference_energies: dict[str, float] | None = None,
    parent: str | DatasetDoc | None = None,
    campaign: str | None = None,
    save: bool = True,
) -> DatasetDoc:
    """A new version of dataset ``name`` from ``frames`` (stored in the ``datasets`` collection).

    Failed frames are excluded (counted in ``n_failed_excluded``) but kept in the frame store;
    identical structures (same lattice, species and positions) are kept once. With ``parent``
    (``DatasetDoc`` or ``'name:version'``, version optional = latest) the parent's frames and
    its train/test assignment are kept, and only the new frames are split.
    """
    if not name or any(c in name for c in "/\\ :"):
        raise UserError(f"invalid dataset name {name!r}", "use letters, digits, '-', '_' and '.'")
    frames = list(frames)
    if save:
        save_frames(frames)
    parent_doc, parent_frames = None, []
    if parent is not None:
        pname, pver = _parse_parent(parent)
        parent_doc, parent_frames = load_dataset(pname, pver)
        if reference_energies is None:
            reference_energies = parent_doc.reference_energies or None

    n_failed = sum(1 for f in frames if f.status != FrameStatus.ok)
    seen: set[str] = set()
    for f in parent_frames:
        seen.add(structure_hash(f.structure))
    kept: list[LabeledFrame] = []
    n_dup = 0
    for f in frames:
        if f.status != FrameStatus.ok:
            continue
        h = structure_hash(f.structure)
        if h in seen:
            n_dup += 1
            continue
        seen.add(h)
        kept.append(f)
    if reference_energies:
        for f in kept:  # fail early on a missing element
            _energy_corrected(f, reference_energies)
    train, test = _split(kept, split, test_fraction, seed)
    if parent_doc is not None:
        train = list(parent_doc.train_ids) + train
        test = list(parent_doc.test_ids) + test
        n_failed += parent_doc.n_failed_excluded
        n_dup += parent_doc.n_duplicates_removed
    all_ids = [*(parent_doc.frame_ids if parent_doc else []), *(f.frame_id for f in kept)]

    store = datasets_store()
    store.connect()
    try:
        versions = _dataset_versions(name, store)
        version = (versions[-1] + 1) if versions else 1
        doc = DatasetDoc(
            name=name,
            version=version,
            frame_ids=all_ids,
            train_ids=train,
            test_ids=test,
            split={"method": split, "test_fraction": test_fraction, "seed": seed},
            reference_energies=dict(reference_energies or {}),
            n_failed_excluded=n_failed,
            n_duplicates_removed=n_dup,
            parent=parent_doc.ref if parent_doc else None,
            campaign=campaign,
            input_hash=content_hash(sorted(all_ids), split, test_fraction, seed, reference_energies or {}),
        )
        if save:
            d = doc.model_dump(mode="json")
            d["dataset_key"] = f"{name}:{version}"
            store.update([d])
    finally:
        store.close()
    log.info("dataset %s v%d: %d frames (%d train / %d test), %d failed excluded, %d duplicates removed",
             name, doc.version, len(all_ids), len(train), len(test), n_failed, n_dup)
    return doc


def find_dataset(name: str, input_hash: str, parent: str | None = None) -> DatasetDoc | None:
    """The stored version of ``name`` with this content and parent ('name:version'), if any."""
    store = datasets_store()
    store.connect()
    try:
        found = [DatasetDoc(**{k: v for k, v in d.items() if k in _DATASET_FIELDS})
                 for d in store.query({"name": name, "input_hash": input_hash})]
    finally:
        store.close()
    found = [d for d in found if (str(d.parent) if d.parent else None) == parent]
    return min(found, key=lambda d: d.version) if found else None


def list_datasets() -> list[DatasetDoc]:
    """Latest version of every dataset."""
    store = datasets_store()
    store.connect()
    try:
        latest: dict[str, dict] = {}
        for d in store.query({}):
            if d["name"] not in latest or d["version"] > latest[d["name"]]["version"]:
                latest[d["name"]] = d
    finally:
        store.close()
    return [DatasetDoc(**{k: v for k, v in d.items() if k in _DATASET_FIELDS}) for d in latest.values()]


def load_dataset(name: str, version: int | None = None, with_frames: bool = True) -> tuple[DatasetDoc, list[LabeledFrame]]:
    """Dataset document (latest version unless given) and its frames (order of ``frame_ids``)."""
    store = datasets_store()
    store.connect()
    try:
        versions = _dataset_versions(name, store)
        if not versions:
            raise UserError(f"no dataset named {name!r}", "list datasets with `mlipflow dataset show`, or build one with `mlipflow label ... --dataset NAME`")
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise UserError(f"dataset {name!r} has no version {version}", f"existing versions: {versions}")
        d = store.query_one({"name": name, "version": version})
    finally:
        store.close()
    doc = DatasetDoc(**{k: v for k, v in d.items() if k in _DATASET_FIELDS})
    frames = load_frames(doc.frame_ids) if with_frames else []
    if with_frames and len(frames) != len(doc.frame_ids):
        log.warning("dataset %s:%d: %d of %d frames missing from the frame store", name, version,
                    len(doc.frame_ids) - len(frames), len(doc.frame_ids))
    return doc, frames


def record_export(doc: DatasetDoc, fmt: str, path: str | Path) -> None:
    """Remember where a dataset version was exported (``exports`` field)."""
    store = datasets_store()
    store.connect()
    try:
        store._collection.update_one(
            {"dataset_key": f"{doc.name}:{doc.version}"}, {"$set": {f"exports.{fmt}": str(path)}}
        )
    finally:
        store.close()
