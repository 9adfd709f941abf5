"""Trajectory readers against ASE's readers, a real LAMMPS run and hand-written files."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.build import bulk

from mlipflow.analysis.io import (
    Frame,
    detect_format,
    iter_chunks,
    iter_frames,
    parse_type_map,
    read_frame,
    read_frames,
    unwrap,
    write_lammps_dump,
)
from mlipflow.analysis.structure import analyze_structure, rdf, to_json_dict
from mlipflow.errors import UserError


def test_lammps_dump_real_run_matches_ase_and_unwraps(lammps_run):
    """Triclinic dump from real LAMMPS: cell and wrapped positions as ASE reads them; xs->x; unwrapping."""
    frames = read_frames(lammps_run / "full.dump", types="1=Na,2=O")
    ase_frames = ase.io.read(lammps_run / "full.dump", index=":", format="lammps-dump-text")
    assert len(frames) == len(ase_frames) == 21
    for fr, at in zip(frames, ase_frames):
        assert np.allclose(fr.cell, at.cell.array, atol=1e-8)
        assert fr.unwrapped  # xu yu zu preferred
        # ASE reads the wrapped x y z; ours minus image flags gives them back
        wrapped = fr.positions - fr.images @ fr.cell - fr.origin
        assert np.allclose(wrapped, at.positions, atol=1e-6)
        assert list(fr.symbols[:30]) == ["Na"] * 30 and list(fr.symbols[30:]) == ["O"] * 20
        assert np.all(np.diff(fr.ids) > 0)
    moved = max(np.abs(f.images).max() for f in frames)
    assert moved >= 1, "the run should cross periodic boundaries for the unwrap test to mean anything"
    # scaled columns in another order give the same (wrapped) configuration
    scaled = read_frames(lammps_run / "scaled.dump", types={1: "Na", 2: "O"})
    for fr, sc in zip(frames, scaled):
        assert not sc.unwrapped
        assert np.allclose(fr.wrapped_positions(), sc.wrapped_positions(), atol=1e-5)
    # unwrapping the scaled (wrapped, no image flags) dump by minimum-image displacements = xu
    unwrapped = list(unwrap(scaled, method="displacement"))
    shift = frames[0].positions - unwrapped[0].positions  # both start from the same frame-0 images
    for fr, un in zip(frames, unwrapped):
        assert np.allclose(un.positions + shift, fr.positions, atol=1e-5)
    # and from image flags: wrapped + images @ cell == xu
    img = list(unwrap([Frame(positions=f.positions - f.images @ f.cell, cell=f.cell, images=f.images)
                       for f in frames], method="images"))
    for fr, un in zip(frames, img):
        assert np.allclose(un.positions, fr.positions, atol=1e-9)


def test_lammps_data_charge_style(lammps_run):
    fr = read_frame(lammps_run / "data.lmp")
    ref = ase.io.read(lammps_run / "data.lmp", format="lammps-data", atom_style="charge")
    assert list(fr.symbols) == ["Na"] * 30 + ["O"] * 20  # from the masses
    assert np.allclose(fr.cell, ref.cell.array)
    assert np.allclose(fr.positions - fr.origin, ref.positions, atol=1e-8)
    assert np.allclose(fr.info["q"], ref.get_initial_charges())
    # the same data file serves as a type map for dumps
    assert parse_type_map(str(lammps_run / "data.lmp")) == {1: "Na", 2: "O"}


def test_lammps_data_atomic_with_element_comments(tmp_path):
    text = """title

3 atoms
2 atom types

0 5 xlo xhi
0 6 ylo yhi
0 7 zlo zhi

Masses

1 55.845 # Fe
2 16.0 # O

Atoms # atomic

3 2 1.0 2.0 3.0
1 1 0.5 0.5 0.5
2 2 4.0 5.0 6.0 0 1 0
"""
    p = tmp_path / "x.data"
    p.write_text(text)
    fr = read_frame(p)
    assert list(fr.ids) == [1, 2, 3]
    assert list(fr.symbols) == ["Fe", "O", "O"]
    assert np.allclose(fr.positions[2], [1.0, 2.0, 3.0])
    assert np.allclose(np.diag(fr.cell), [5, 6, 7])


def test_general_triclinic_abc_dump_and_element_column(tmp_path):
    """The 'abc origin' box header (LAMMPS >= 2024) and an element column."""
    p = tmp_path / "g.dump"
    p.write_text("ITEM: TIMESTEP\n7\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS abc origin pp pp pp\n"
                 "4 0 0 1\n1 5 0 2\n0.5 0.5 6 3\n ITEM: ATOMS id element xs ys zs\n".replace(" ITEM", "ITEM")
                 + "2 O 0.5 0.5 0.5\n1 Fe 0 0 0\n")
    (fr,) = read_frames(p)
    assert fr.step == 7 and list(fr.symbols) == ["Fe", "O"]
    cell = np.array([[4, 0, 0], [1, 5, 0], [0.5, 0.5, 6]])
    assert np.allclose(fr.cell, cell)
    assert np.allclose(fr.positions[0], [1, 2, 3])
    assert np.allclose(fr.positions[1], [1, 2, 3] + 0.5 * cell.sum(0))


@pytest.mark.parametrize("ext,fmt", [("xyz", "extxyz"), ("traj", "traj"), ("XDATCAR", "xdatcar")])
def test_ase_written_formats(tmp_path, ext, fmt):
    images = []
    for i in range(4):
        a = bulk("NaCl", "rocksalt", a=5.6).repeat(2)
        a.rattle(0.1, seed=i)
        a.cell[1, 0] += 0.2 * i  # variable cell
        images.append(a)
    p = tmp_path / (f"t.{ext}" if ext != "XDATCAR" else "XDATCAR")
    ase.io.write(p, images, format={"xyz": "extxyz", "traj": "traj", "XDATCAR": "vasp-xdatcar"}[ext])
    assert detect_format(p) == fmt
    frames = read_frames(p)
    assert len(frames) == 4
    for fr, at in zip(frames, images):
        assert list(fr.symbols) == at.get_chemical_symbols()
        assert np.allclose(fr.cell, at.cell.array, atol=1e-6)
        d = fr.positions - at.positions
        frac = d @ np.linalg.inv(at.cell.array)
        assert np.allclose(frac - np.round(frac), 0, atol=1e-6)  # XDATCAR stores wrapped fractional coords
    sub = read_frames(p, start=1, step=2)
    assert [np.allclose(s.cell, images[k].cell.array, atol=1e-6) for s, k in zip(sub, (1, 3))] == [True, True]


def _glass_like_frames(n_frames=6, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    base = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(3)
    for k in range(n_frames):
        a = base.copy()
        a.rattle(0.15, seed=int(rng.integers(1e6)))
        fr = Frame.from_atoms(a, step=100 * k)
        fr.ids = np.arange(1, len(a) + 1)
        fr.types = np.where(fr.symbols == "Na", 1, 2)
        frames.append(fr)
    return frames


def test_streaming_equals_in_memory(tmp_path):
    """Chunked/streamed reading gives exactly the frames and the g(r) of the in-memory list."""
    frames = _glass_like_frames()
    p = tmp_path / "multi.dump"
    write_lammps_dump(p, frames, columns=("type", "z", "id", "x", "y"), shuffle=True)
    all_frames = read_frames(p, types="1=Na,2=O".replace("O", "Cl"))
    chunks = list(iter_chunks(p, chunk=4, types={1: "Na", 2: "Cl"}))
    assert [len(c) for c in chunks] == [4, 2]
    flat = [f for c in chunks for f in c]
    for a, b, src in zip(all_frames, flat, frames):
        assert np.array_equal(a.positions, b.positions)
        assert np.allclose(a.positions, src.positions, atol=1e-9)  # written %.10f, sorted back by id
        assert list(a.symbols) == list(src.symbols)
    g_stream = rdf(iter_frames(p, types={1: "Na", 2: "Cl"}), rmax=8.0)
    g_mem = rdf(all_frames, rmax=8.0)
    assert g_stream.n_frames == 6
    assert np.array_equal(g_stream.g_total, g_mem.g_total)
    for k in g_mem.partials:
        assert np.array_equal(g_stream.partials[k], g_mem.partials[k])
    res_stream = to_json_dict(analyze_structure(lambda: iter_frames(p, types={1: "Na", 2: "Cl"}), sq=False,
                                                rings=False))
    res_mem = to_json_dict(analyze_structure(all_frames, sq=False, rings=False))
    assert res_stream == res_mem


def test_bad_inputs_raise_user_error(tmp_path):
    with pytest.raises(UserError):
        list(iter_frames(tmp_path / "missing.dump"))
    p = tmp_path / "a.xyz"
    ase.io.write(p, bulk("Cu"))
    with pytest.raises(UserError):
        list(iter_frames(p, format="nonsense"))
    for bad in ("1=Xx", "1Fe", "a=Fe"):
        with pytest.raises(UserError):
            parse_type_map(bad)
    frames = _glass_like_frames(1)
    d = tmp_path / "t.dump"
    write_lammps_dump(d, frames, columns=("id", "type", "x", "y", "z"))
    with pytest.raises(UserError):  # type 2 missing from the map
        read_frames(d, types="1=Na")
    fr = read_frames(d)[0]
    assert fr.symbols is None and set(fr.types.tolist()) == {1, 2}
    with pytest.raises(UserError):
        fr.numbers  # noqa: B018 - needs a type map
