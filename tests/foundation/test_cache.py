"""The one content-addressed cache: keys, atomic directory entries, document entries."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest


def test_key_covers_every_input():
    from mlipflow.cache import cache_key
    from mlipflow.schemas import MDProtocol, PotentialRef

    p = MDProtocol(name="x")
    ref = PotentialRef(kind="ace", input_hash="a" * 64)
    base = cache_key("md", "ase", p, ref.identity())
    assert base == cache_key("md", "ase", MDProtocol(name="x"), ref.identity())
    assert base != cache_key("md", "lammps", p, ref.identity())  # the engine is part of the key
    assert base != cache_key("md", "ase", p.model_copy(update={"seed": 1}), ref.identity())
    assert base != cache_key("md", "ase", p, PotentialRef(kind="ace", input_hash="b" * 64).identity())
    assert base != cache_key("fit", "ase", p, ref.identity())  # and the entry kind


def test_directory_entry_built_once_and_reused(tmp_path):
    from mlipflow import cache

    calls = []

    def build(d):
        calls.append(d)
        (d / "out.txt").write_text("done")
        return "built"

    assert cache.directory(tmp_path / "e", "k1", build, load=lambda d: "loaded") == "built"
    assert cache.directory(tmp_path / "e", "k1", build, load=lambda d: "loaded") == "loaded"
    assert len(calls) == 1
    # a different key at the same place is a stale entry: rebuilt
    assert cache.directory(tmp_path / "e", "k2", build, load=lambda d: "loaded") == "built"
    assert len(calls) == 2


def test_half_written_entry_is_invisible(tmp_path):
    """A build that dies (here: raises) leaves no marker; the next call rebuilds from an empty directory."""
    from mlipflow import cache

    def dying(d):
        (d / "partial.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.directory(tmp_path / "e", "k", dying)
    assert not cache.is_complete(tmp_path / "e", "k")
    seen = []
    cache.directory(tmp_path / "e", "k", lambda d: seen.append(sorted(p.name for p in d.iterdir())))
    assert seen == [[]]  # the partial file was cleared before the rebuild
    assert json.loads((tmp_path / "e" / cache.MARKER).read_text())["key"] == "k"


def _build_in_process(path, counter):
    from mlipflow import cache

    def build(d):
        with open(counter, "a") as fh:
            fh.write("x")
        return "built"

    cache.directory(path, "same", build, load=lambda d: "loaded")


def test_concurrent_builders_build_once(tmp_path):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_build_in_process, args=(tmp_path / "e", tmp_path / "n")) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert (tmp_path / "n").read_text() == "x"


def test_document_entries_persist_in_the_store(mlipflow_home):
    from mlipflow import cache

    cache.STATS.reset()
    calls = []
    value = cache.get_or_compute("demo", [1, {"a": 2}], lambda: calls.append(1) or {"v": 3})
    again = cache.get_or_compute("demo", [1, {"a": 2}], lambda: calls.append(1) or {"v": 4})
    assert value == again == {"v": 3} and calls == [1]
    assert cache.lookup("demo", [1, {"a": 2}]) == {"v": 3} and cache.lookup("demo", [2]) is None
    assert cache.STATS.as_dict() == {"hits": {"demo": 1}, "computed": {"demo": 1}}
