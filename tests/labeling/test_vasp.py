"""VASP labeling the atomate2 way, without VASP.

VASP and its POTCARs cannot exist here, so (as atomate2's own tests do):
* ``atomate2.utils.testing.vasp.monkeypatch_vasp`` replaces ``run_vasp`` by a check of the
  generated INCAR/KPOINTS/POSCAR/POTCAR.spec against ``tests/test_data/vasp/<job>/inputs`` and a
  copy of real VASP outputs (ASE's test vasprun.xml/OUTCAR, see tests/test_data/vasp/README.md);
* the custodian tests run atomate2's real ``run_vasp`` (custodian + error handlers +
  validators) with a fake ``vasp_std`` shell script that copies those outputs (or fails).
POTCAR files are replaced by POTCAR.spec (``potcar_spec=True``) in both cases.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from labeling_helpers import VASP_REF, olivine

from mlipflow.schemas import FrameStatus

OUT_C2 = VASP_REF / "outputs_c2"
C2_ENERGY = -20.23985977  # e_fr_energy of ASE's vasprun_pstress.xml


def _ref_root(tmp_path: Path, jobs: dict[str, Path]) -> Path:
    """Reference tree <job>/inputs (from test_data) + <job>/outputs (a copy of given outputs)."""
    root = tmp_path / "vasp_ref"
    for job, outputs in jobs.items():
        (root / job).mkdir(parents=True)
        shutil.copytree(VASP_REF / job / "inputs", root / job / "inputs")
        shutil.copytree(outputs, root / job / "outputs")
    return root


@pytest.fixture
def mock_vasp(monkeypatch, tmp_path):
    from atomate2.utils.testing.vasp import monkeypatch_vasp

    gen = monkeypatch_vasp(monkeypatch, tmp_path / "vasp_ref")
    register = next(gen)
    yield register
    try:
        next(gen)
    except StopIteration:
        pass


def test_named_input_sets_carry_paper_values():
    from mlipflow.engines.vasp import gamma_mesh, input_set_generator

    s = olivine("Na")
    vi = input_set_generator("nafepo4_ace", "static").get_input_set(s, potcar_spec=True)
    inc = vi["INCAR"]
    assert inc["ENCUT"] == 520 and inc["GGA"].upper() == "PE" and inc["ISPIN"] == 2 and inc["LDAUTYPE"] == 2
    syms = vi["POSCAR"].site_symbols
    assert inc["LDAUU"][syms.index("Fe")] == 5.1 and sum(inc["LDAUU"]) == 5.1
    assert inc["EDIFF"] == pytest.approx(1e-5 * len(s))  # per atom
    assert tuple(vi["KPOINTS"].kpts[0]) == (1, 1, 1) and vi["KPOINTS"].style.name == "Gamma"
    assert vi["POTCAR.spec"].split() == ["Na_pv", "Fe", "P", "O"]

    li = olivine("Li", magmom=None)
    li.add_site_property("magmom", [3.7 if sp.symbol == "Fe" else 0.0 for sp in li.species])
    vi = input_set_generator("lixfepo4_dpa", "relax").get_input_set(li, potcar_spec=True)
    inc = vi["INCAR"]
    assert inc["EDIFF"] == 1e-6 and inc["EDIFFG"] == -0.02 and inc["ENCUT"] == 520
    assert inc["LDAUU"][vi["POSCAR"].site_symbols.index("Fe")] == 5.3
    assert sorted(set(inc["MAGMOM"])) == [0.0, 3.7]  # per-site MAGMOM from the structure
    assert vi["POTCAR.spec"].split() == ["Li_sv", "Fe_pv", "P", "O"]
    assert vi["KPOINTS"].style.name == "Gamma" and tuple(vi["KPOINTS"].kpts[0]) == gamma_mesh(li, 0.4) == (2, 3, 4)
    # user overrides merge on top
    vi = input_set_generator("lixfepo4_dpa", "static", user_incar_settings={"ENCUT": 600, "NCORE": 4}).get_input_set(li, potcar_spec=True)
    assert vi["INCAR"]["ENCUT"] == 600 and vi["INCAR"]["NCORE"] == 4 and vi["INCAR"]["EDIFF"] == 1e-6


@pytest.mark.parametrize("set_name,alkali", [("nafepo4_ace", "Na"), ("lixfepo4_dpa", "Li")])
def test_static_inputs_checked_and_outputs_parsed(mlipflow_home, tmp_path, mock_vasp, set_name, alkali):
    """Generated INCAR/KPOINTS/POSCAR/POTCAR.spec equal the references; real outputs become a frame."""
    from mlipflow.engines.labelers import get_labeler

    _ref_root(tmp_path, {f"{set_name}_static": OUT_C2})
    mock_vasp({f"{set_name} static": f"{set_name}_static"})
    lab = get_labeler(f"vasp:{set_name}", workdir=tmp_path / "runs")
    s = olivine(alkali)
    (frame,) = lab.label([s], source="static")
    assert frame.status == FrameStatus.ok, frame.failure_reason
    assert frame.energy == pytest.approx(C2_ENERGY)
    assert frame.formula == "C" and np.asarray(frame.forces).shape == (2, 3)
    # vasprun stress is -165.9956 kB (VASP sign) -> +16.6 GPa (ASE sign, GPa)
    assert frame.stress[0][0] == pytest.approx(16.59956258)
    assert frame.labeler == f"vasp:{set_name}" and frame.labeler_settings["calc_type"] == "static"
    assert frame.frame_id == lab.frame_id(s)
    # cached: a second call does not run (monkeypatched) VASP again
    runs = list((tmp_path / "runs").rglob("vasprun.xml*"))
    assert lab.label([s])[0].frame_id == frame.frame_id
    assert list((tmp_path / "runs").rglob("vasprun.xml*")) == runs


def test_input_mismatch_is_detected(mlipflow_home, tmp_path, mock_vasp):
    """The reference check really compares: lixfepo4_dpa inputs against nafepo4_ace references fail."""
    from mlipflow.engines.labelers import get_labeler

    root = _ref_root(tmp_path, {"nafepo4_ace_static": OUT_C2})
    shutil.copytree(root / "nafepo4_ace_static", root / "wrong")
    mock_vasp({"lixfepo4_dpa static": "wrong"})
    lab = get_labeler("vasp:lixfepo4_dpa", workdir=tmp_path / "runs")
    (frame,) = lab.label([olivine("Li")])
    assert frame.status == FrameStatus.failed
    assert "inconsistent" in frame.failure_reason


def _multistep_vasprun(dst: Path, nsteps: int, nelm: int | None = None) -> Path:
    """A multi-ionic-step vasprun.xml built from ASE's real single-step file: the
    <calculation> block repeated with the energy shifted per step (relax-like)."""
    text = (OUT_C2 / "vasprun.xml").read_text(encoding="latin-1")
    start, end = text.index("<calculation>"), text.index("</calculation>") + len("</calculation>")
    block = text[start:end]
    blocks = []
    for k in range(nsteps):
        b = re.sub(r'(<i name="e_fr_energy">\s*)(-?\d+\.\d+)',
                   lambda m, k=k: f"{m.group(1)}{float(m.group(2)) + 0.1 * (nsteps - 1 - k):.8f}", block)
        blocks.append(b)
    text = text[:start] + "\n".join(blocks) + text[end:]
    if nelm is not None:
        text = re.sub(r'(<i type="int" name="NELM">\s*)\d+', rf"\g<1>{nelm}", text)
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("OUTCAR", "CONTCAR", "OSZICAR"):
        shutil.copy(OUT_C2 / f, dst / f)
    (dst / "vasprun.xml").write_text(text, encoding="latin-1")
    return dst


def test_relax_keeps_every_ionic_step(mlipflow_home, tmp_path, mock_vasp):
    from mlipflow.engines.labelers import get_labeler

    outs = _multistep_vasprun(tmp_path / "relax_out", 5)
    _ref_root(tmp_path, {"nafepo4_ace_relax": outs})
    mock_vasp({"nafepo4_ace relax": "nafepo4_ace_relax"})
    lab = get_labeler("vasp:nafepo4_ace", workdir=tmp_path / "runs")
    frames = lab.relax(olivine("Na"))
    assert [f.step for f in frames] == [0, 1, 2, 3, 4]
    assert [f.energy for f in frames] == pytest.approx([C2_ENERGY + 0.1 * (4 - k) for k in range(5)])
    assert len({f.trajectory_id for f in frames}) == 1 and all(f.source == "relax" for f in frames)
    runs = sorted((tmp_path / "runs").rglob("job_*"))
    again = lab.relax(olivine("Na"))  # stored trajectory: VASP is not run again
    assert [f.created_at for f in again] == [f.created_at for f in frames]
    assert sorted((tmp_path / "runs").rglob("job_*")) == runs


def test_aimd_keeps_every_kth_step(mlipflow_home, tmp_path, mock_vasp):
    """NaFePO4 AIMD preset (NVT 5000 K, 100 × 2 fs) inputs checked; every 20th step kept."""
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.engines.vasp import aimd_preset

    assert aimd_preset("nafepo4_ace") == {"temperature": 5000.0, "steps": 100, "timestep_fs": 2.0, "every": 20}
    outs = _multistep_vasprun(tmp_path / "md_out", 41)
    _ref_root(tmp_path, {"nafepo4_ace_md": outs})
    mock_vasp({"nafepo4_ace md": "nafepo4_ace_md"})
    lab = get_labeler("vasp:nafepo4_ace", workdir=tmp_path / "runs")
    frames = lab.md(olivine("Na"))
    assert [f.step for f in frames] == [0, 20, 40]
    assert all(f.metadata["temperature_K"] == 5000.0 for f in frames)


def test_unconverged_scf_becomes_failed_frame(mlipflow_home, tmp_path, mock_vasp):
    """The real step needed 9 electronic steps; with NELM = 9 it counts as unconverged."""
    from mlipflow.engines.labelers import get_labeler

    outs = _multistep_vasprun(tmp_path / "unconv", 1, nelm=9)
    _ref_root(tmp_path, {"nafepo4_ace_static": outs})
    mock_vasp({"nafepo4_ace static": "nafepo4_ace_static"})
    lab = get_labeler("vasp:nafepo4_ace", workdir=tmp_path / "runs")
    (frame,) = lab.label([olivine("Na")])
    assert frame.status == FrameStatus.failed
    assert "unconverged SCF" in frame.failure_reason and "NELM = 9" in frame.failure_reason
    assert frame.energy == pytest.approx(C2_ENERGY)  # labels kept, marked failed


def test_import_real_vasp_files(mlipflow_home, tmp_path):
    from mlipflow.engines.dataset_io import import_files

    (f1,) = import_files([OUT_C2 / "vasprun.xml"])
    assert f1.energy == pytest.approx(C2_ENERGY) and f1.status == FrameStatus.ok
    outcar_dir = tmp_path / "ni"
    outcar_dir.mkdir()
    shutil.copy(OUT_C2 / "OUTCAR", outcar_dir / "OUTCAR")
    (f2,) = import_files([outcar_dir / "OUTCAR"])
    assert f2.formula == "Ni" and f2.nsites == 18 and f2.energy == pytest.approx(-68.22868532)  # TOTEN (free energy), as for vasprun
    assert np.asarray(f2.forces).shape == (18, 3) and f2.status == FrameStatus.ok


# ----------------------------------------------------------------------------- custodian


def _fake_vasp(tmp_path: Path, outputs: Path | None) -> Path:
    script = tmp_path / "vasp_std"
    if outputs is None:
        body = "#!/bin/sh\necho 'fake vasp: crashed before writing anything' >&2\nexit 1\n"
    else:
        body = f"#!/bin/sh\ncp {outputs}/* .\necho ' fake vasp finished' > vasp.out\n"
    script.write_text(body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.fixture
def potcar_spec(monkeypatch):
    """No POTCAR files here: write POTCAR.spec instead (what monkeypatch_vasp does), keep run_vasp real."""
    from atomate2.vasp.sets.base import VaspInputGenerator
    from pymatgen.io.vasp.sets import VaspInputSet

    orig = VaspInputGenerator.get_input_set

    def get_input_set(self, *args, **kwargs):
        kwargs["potcar_spec"] = True
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(VaspInputSet, "get_input_set", get_input_set)
    monkeypatch.setattr(VaspInputSet, "nelect", lambda *a, **k: 12)


CUSTODIAN_FAST = {"custodian_kwargs": {"polling_time_step": 0.2, "monitor_freq": 1}}


def test_custodian_runs_fake_executable(mlipflow_home, tmp_path, potcar_spec):
    from mlipflow.engines.labelers import get_labeler

    exe = _fake_vasp(tmp_path, OUT_C2)
    lab = get_labeler("vasp:nafepo4_ace", workdir=tmp_path / "runs",
                      run_vasp_kwargs={"vasp_cmd": str(exe), **CUSTODIAN_FAST})
    (frame,) = lab.label([olivine("Na")])
    assert frame.status == FrameStatus.ok, frame.failure_reason
    assert frame.energy == pytest.approx(C2_ENERGY)
    run_dir = Path(frame.metadata["run_dir"])
    assert any(p.name.startswith("custodian.json") for p in run_dir.iterdir())


def test_custodian_give_up_becomes_failed_frame(mlipflow_home, tmp_path, potcar_spec):
    from mlipflow.engines.labelers import get_labeler

    exe = _fake_vasp(tmp_path, None)
    lab = get_labeler("vasp:lixfepo4_dpa", workdir=tmp_path / "runs",
                      run_vasp_kwargs={"vasp_cmd": str(exe), **CUSTODIAN_FAST})
    s = olivine("Li")
    (frame,) = lab.label([s])
    assert frame.status == FrameStatus.failed
    assert "custodian/VASP job failed" in frame.failure_reason
    assert frame.formula == "LiFePO4"  # the input structure, from POSCAR
    # failed frames are stored (data), excluded from datasets but counted
    from mlipflow.engines.repository import build_dataset, load_frames

    assert load_frames([frame.frame_id])[0].status == FrameStatus.failed
    doc = build_dataset("failed-only", [frame])
    assert doc.frame_ids == [] and doc.n_failed_excluded == 1
    assert os.path.isdir(frame.metadata["run_dir"])
