"""The embedded store's keyed collections: key lookups, other criteria, removal, processes, legacy montydb data."""

from __future__ import annotations

import subprocess
import sys

import numpy as np


def _store(path):
    from mlipflow.keystore import KeyedSqliteStore

    s = KeyedSqliteStore(str(path), collection_name="blobs", key="blob_uuid", legacy_database="mlipflow")
    s.connect()
    return s


def test_update_query_remove(tmp_path):
    s = _store(tmp_path)
    s.update([{"blob_uuid": f"b{i}", "job_uuid": "j1" if i < 3 else "j2", "data": {"x": list(range(i))}}
              for i in range(5)])
    got = list(s.query({"blob_uuid": {"$in": ["b4", "b1", "nope"]}}, properties=["blob_uuid", "data"]))
    assert [d["blob_uuid"] for d in got] == ["b4", "b1"] and got[0]["data"] == {"x": [0, 1, 2, 3]}
    assert set(got[0]) == {"blob_uuid", "data"}
    assert s.query_one({"blob_uuid": "b2"})["job_uuid"] == "j1"
    assert s.count() == 5 and s.count({"job_uuid": "j2"}) == 2  # a non-key criterion: montydb's filter
    s.update({"blob_uuid": "b0", "job_uuid": "j1", "data": "replaced"})
    assert s.count() == 5 and s.query_one({"blob_uuid": "b0"})["data"] == "replaced"
    s.remove_docs({"job_uuid": "j1"})
    assert sorted(d["blob_uuid"] for d in s.query()) == ["b3", "b4"]
    s.close()


def test_jobstore_round_trip_and_another_process_reads(mlipflow_home):
    from jobflow import Flow, job
    from jobflow.managers.local import run_locally

    from mlipflow.store import job_store

    @job(data=["frames"])
    def make():
        return {"type": "t", "frames": np.arange(30000.0).reshape(-1, 3).tolist()}

    j = make()
    run_locally(Flow([j]), store=job_store(), create_folders=False, log=False)
    code = ("from mlipflow.store import job_store; s = job_store(); s.connect(); "
            f"print(len(s.get_output({j.uuid!r}, load=True)['frames']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "10000", out.stderr


def test_an_earlier_montydb_collection_is_copied_once(tmp_path):
    from maggma.stores.mongolike import MontyStore

    old = MontyStore(collection_name="blobs", database_path=str(tmp_path), database_name="mlipflow",
                     key="blob_uuid", storage="sqlite")
    old.connect()
    old.update([{"blob_uuid": "old1", "data": [1, 2, 3]}], key="blob_uuid")
    old.close()
    s = _store(tmp_path)
    assert s.query_one({"blob_uuid": "old1"})["data"] == [1, 2, 3]
    assert s.count() == 1  # copied into the new table, once
    s.update({"blob_uuid": "new", "data": 0})
    s.close()
    s = _store(tmp_path)
    assert s.count() == 2
