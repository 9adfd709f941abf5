"""Blob lookups in the embedded store: montydb (the previous blob collection) against the
key-indexed SQLite table (:mod:`mlipflow.keystore`) that replaced it.

    .venv/bin/python benchmarks/bench_blob_lookup.py [--blobs 200] [--mb 0.5] [--lookups 20]

Writes ``--blobs`` trajectory-like blobs (float arrays of about ``--mb`` MB each) the way jobflow
stores them, then times ``--lookups`` reads of one blob by ``blob_uuid`` (what every reference to
an MD run document does) and one write.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time

import numpy as np


def _blobs(n: int, mb: float) -> list[dict]:
    rng = np.random.default_rng(0)
    per = int(mb * 1e6 / 8)
    return [{"blob_uuid": f"blob-{i:05d}", "job_uuid": f"job-{i}", "job_index": 1,
             "data": {"positions": rng.random(per).round(6).tolist()}} for i in range(n)]


def _time(store, blobs: list[dict], lookups: int) -> tuple[float, float]:
    store.connect()
    for i in range(0, len(blobs), 20):
        store.update(blobs[i:i + 20], key="blob_uuid")
    rng = np.random.default_rng(1)
    picks = [blobs[int(k)]["blob_uuid"] for k in rng.integers(0, len(blobs), lookups)]
    t0 = time.perf_counter()
    for u in picks:
        got = list(store.query({"blob_uuid": {"$in": [u]}}, properties=["blob_uuid", "data"]))
        assert len(got) == 1
    read = (time.perf_counter() - t0) / lookups
    t0 = time.perf_counter()
    store.update([dict(blobs[0], blob_uuid="extra")], key="blob_uuid")
    write = time.perf_counter() - t0
    store.close()
    return read, write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blobs", type=int, default=200)
    ap.add_argument("--mb", type=float, default=0.5)
    ap.add_argument("--lookups", type=int, default=20)
    a = ap.parse_args()
    from maggma.stores.mongolike import MontyStore

    from mlipflow.keystore import KeyedSqliteStore

    blobs = _blobs(a.blobs, a.mb)
    print(f"{a.blobs} blobs of ~{a.mb} MB; {a.lookups} lookups by blob_uuid")
    for name, make in (("montydb (sqlite storage)", lambda d: MontyStore("blobs", database_path=d,
                                                                          database_name="b", key="blob_uuid",
                                                                          storage="sqlite")),
                       ("KeyedSqliteStore", lambda d: KeyedSqliteStore(d, "blobs", key="blob_uuid"))):
        d = tempfile.mkdtemp()
        try:
            read, write = _time(make(d), blobs, a.lookups)
        finally:
            shutil.rmtree(d, ignore_errors=True)
        print(f"{name:26s} read one blob {read * 1e3:9.1f} ms   write one blob {write * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
