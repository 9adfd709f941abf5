"""`potential validate` (issue 16, item 4): errors per composition, E–V curves of reference crystals
against CHGNet, melt stability in LAMMPS, the uncertain fraction of production frames (a real tiny
ACE and real MD frames), the stored document and its problems."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mlipflow.errors import UserError


def test_reference_crystals_and_eos_fit():
    from mlipflow.engines.validation import CRYSTALS, crystal, fit_eos, strained

    formulas = {n: crystal(n).get_chemical_formula(empirical=True) for n in CRYSTALS}
    assert formulas == {"Na2O": "Na2O", "FeO": "FeO", "LiFePO4": "FeLiO4P", "NaFePO4-olivine": "FeNaO4P"}
    assert len(crystal("NaFePO4-olivine")) == 28
    cells = strained(crystal("FeO"), 0.06, 7)
    v = np.array([a.get_volume() for a in cells])
    assert v[0] / v[3] == pytest.approx(0.94) and v[-1] / v[3] == pytest.approx(1.06)
    # Birch–Murnaghan data with V0 = 10 Å³, B0 = 100 GPa, B0' = 4: the fit recovers them
    b0 = 100 / 160.21766208
    vv = np.linspace(9.4, 10.6, 7)
    eta = (10 / vv) ** (2 / 3)
    e = -5 + 9 * 10 * b0 / 16 * ((eta - 1) ** 3 * 4 + (eta - 1) ** 2 * (6 - 4 * eta))
    fit = fit_eos(vv, e)
    assert fit["v0"] == pytest.approx(10.0, rel=1e-3) and fit["b0_GPa"] == pytest.approx(100.0, rel=1e-2)
    with pytest.raises(UserError, match="unknown reference crystal"):
        crystal("Na3PO4-gamma")
    with pytest.raises(UserError, match="at least 5"):
        strained(crystal("FeO"), 0.06, 3)


def test_uncertainty_fraction_of_md_frames(tiny_fit, emt_data, tmp_path):
    """γ of frames from a real hot MD run with the tiny ACE: the fraction above a threshold is what
    the per-frame γ says, and a potential without uncertainty is refused."""
    from ase.io import write

    from mlipflow.engines.ase_md import run_ase_md
    from mlipflow.engines.potentials import calculator, potential_ref
    from mlipflow.engines.protocols import melt_quench_protocol
    from mlipflow.engines.selection import candidate_gammas
    from mlipflow.engines.validation import uncertainty_fraction
    from mlipflow.schemas import PotentialRef

    ref = PotentialRef(kind="ace", paths={"model": tiny_fit.potential_yaml, "active_set": tiny_fit.active_set})
    p = melt_quench_protocol(t_melt=1500, melt_ps=0.04, cooling_rate_K_per_ps=50_000, t_final=300, timestep_fs=2,
                             gamma_lo=0.0, gamma_hi=None, gamma_every=2, seed=3)  # keep a frame every 2 steps
    res = run_ase_md(emt_data["items"][1][0] * (2, 2, 2), calculator(ref, uncertainty=True), p, progress=False)
    frames = [f for f in res.frames if f.info.get("reason") == "gamma"]
    assert len(frames) >= 10
    g = candidate_gammas(frames, tiny_fit.potential_yaml, tiny_fit.active_set)
    thr = float(np.median(g))
    u = uncertainty_fraction(ref, frames, thr, source="md")
    assert u.signal == "gamma" and u.n_frames == len(frames)
    assert u.n_above == int((g > thr).sum()) and u.max == pytest.approx(g.max(), rel=1e-6)
    assert u.fraction_above == pytest.approx(np.mean(g > thr))
    write(tmp_path / "traj.extxyz", frames)
    with pytest.raises(UserError, match="no uncertainty"):
        uncertainty_fraction(potential_ref("pedone2006"), frames, 1.0)


def test_validate_command_pedone(mlipflow_home, tmp_path):
    """The whole command on the shipped Pedone potential: CHGNet-labelled frames of two compositions
    as the dataset, E–V of Na2O and FeO against CHGNet, a LAMMPS melt-stability run; the stored
    document, the plot, the report of a campaign it is attached to; bad input refused."""
    from mlipflow.cli.main import main
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.engines.repository import build_dataset
    from mlipflow.generation.amorphous import random_structure
    from mlipflow.store import query_outputs

    cells, metas = [], []
    for formula, seed in (("NaFePO4", 0), ("NaFePO4", 1), ("Na2O", 2)):
        st, _ = random_structure(formula, atoms=24 if formula == "NaFePO4" else 15, seed=seed, use_mp=False, density=2.6)
        cells.append(st)
        metas.append({"composition": formula})
    frames = get_labeler("chgnet").label(cells, metadata=metas)
    ds = build_dataset("val", frames, split="test")
    out = tmp_path / "v.json"
    args = ["potential", "validate", "pedone2006", "--dataset", f"{ds.name}:{ds.version}", "--crystal", "Na2O",
            "--crystal", "FeO", "--atoms", "60", "--ps", "0.05", "--engine", "lammps", "--plot", str(tmp_path / "eos.png"),
            "--json", str(out)]
    assert main(args) == 0
    doc = json.loads(out.read_text())
    assert {r["composition"]: r["n_frames"] for r in doc["by_composition"]} == {"NaFePO4": 2, "Na2O": 1}
    assert doc["overall"]["n_structures"] == 3 and all(r["errors"]["force_rmse"] > 0 for r in doc["by_composition"])
    eos = {e["name"]: e for e in doc["eos"]}
    assert set(eos) == {"Na2O", "FeO"}
    for e in eos.values():
        assert len(e["volumes_A3_atom"]) == 7 and e["reference_labeler"] == "chgnet"
        assert e["reference_v0_A3_atom"] > 0 and e["v0_error"] == pytest.approx(e["v0_A3_atom"] / e["reference_v0_A3_atom"] - 1)
    assert doc["stability"]["natoms"] > 0 and doc["stability"]["steps_done"] > 0
    # every problem names its check; a bulk modulus off by more than 30 % is one
    for name, e in eos.items():
        if abs(e["b0_error"]) > 0.3:
            assert any(p.startswith(f"E–V of {name}: bulk modulus") for p in doc["problems"])
    assert (tmp_path / "eos.png").stat().st_size > 5000
    stored = query_outputs(doc_type="validation")
    assert len(stored) == 1 and stored[0]["output"]["problems"] == doc["problems"]
    # attached to a campaign, the validation is a section of its report
    from pathlib import Path

    from mlipflow.report import build_report

    assert main(["run", str(Path(__file__).parents[2] / "examples" / "example_eos.yaml")]) == 0
    assert main(args[:3] + ["--crystal", "FeO", "--labeler", "none", "--atoms", "0", "--campaign", "example-eos",
                            "--plot", str(tmp_path / "eos2.png")]) == 0
    html = build_report("example-eos")
    assert "Validation before production" in html and "E–V curves (Birch–Murnaghan)" in html
    assert html.count("data:image/png;base64") >= 1
    # bad input: one message, exit 2, nothing stored
    assert main(["potential", "validate", "pedone2006", "--crystal", "Na3PO4-gamma"]) == 2
    assert main(["potential", "validate", "pedone2006", "--trajectory", str(tmp_path / "none.dump")]) == 2
    assert main(["potential", "validate", "pedone2006", "--labeler", "nonsense"]) == 2
    assert main(["potential", "validate", "pedone2006", "--split", "half"]) == 2
    assert len(query_outputs(doc_type="validation")) == 2


@pytest.mark.slow
def test_validation_as_the_campaign_step(mlipflow_home, tmp_path):
    """`validation: {enabled: true}` in an AL campaign: the potential the campaign ends with is
    validated on the fixed test set, against E–V curves of a crystal file with the campaign's
    labeler (EMT), with the campaign's last stability run (no second one); the stored validation
    document is attached to the campaign, its problems are in the campaign summary and the report
    shows the section. A crystal nobody can read is refused when the campaign file is loaded."""
    import yaml
    from ase.build import bulk
    from ase.io import write

    from mlipflow.cli.main import main
    from mlipflow.report import build_report
    from mlipflow.store import query_outputs

    cu = tmp_path / "cu_fcc.extxyz"
    write(cu, bulk("Cu", "fcc", a=3.6, cubic=True))
    params = {
        "labeler": "emt",
        "structures": {"units": ["Cu", "Al"], "step": 0.5, "atoms": 16, "min_distance": 1.9, "scales": [1.0],
                       "density": 4.0, "seed": 0},
        "aimd": {"temperature": 1500, "steps": 24, "timestep_fs": 2.0, "every": 4, "test_fraction": 0.2},
        "fit": {"preset": "tiny"},
        "loop": {"max_iterations": 0},
        "stability": {"atoms": 32, "temperature": 1000, "ps": 0.02, "timestep_fs": 2.0},
        "test_set": {"structures": 1, "steps": 12, "every": 4},
        "validation": {"enabled": True, "crystals": [str(cu)], "eos_points": 5},
    }
    camp = tmp_path / "al_validate.yaml"
    camp.write_text(yaml.safe_dump({"name": "al-validate", "flow": "nafepo4_al", "parameters": params}))
    assert main(["run", str(camp)]) == 0

    vals = query_outputs(doc_type="validation", campaign="al-validate")
    assert len(vals) == 1
    val = vals[0]["output"]
    summary = query_outputs(doc_type="campaign", campaign="al-validate")[0]["output"]["summary"]
    # the validated potential is the one the campaign hands on (no iterations: the first fit)
    assert val["potential"]["input_hash"] == summary["final_potential"]["input_hash"]
    # errors on the fixed test set (its only cell: one composition row), not on the training data
    assert val["dataset"]["name"].endswith("-fixed-test")
    assert sum(r["n_frames"] for r in val["by_composition"]) == val["overall"]["n_structures"] > 0
    (eos,) = val["eos"]
    assert eos["formula"] == "Cu" and eos["reference_labeler"] == "emt" and len(eos["volumes_A3_atom"]) == 5
    # the campaign's stability run is the validation's: one stability MD run, not two
    assert val["stability"]["steps_done"] == summary["stability"]["first"]["steps_done"] > 0
    assert len(query_outputs(doc_type="md_run", campaign="al-validate")) == 1
    assert summary["validation_problems"] == val["problems"]
    assert "Validation before production" in build_report("al-validate")
    # bad input: refused before any job runs, nothing new stored
    params["validation"]["crystals"] = [str(tmp_path / "missing.cif")]
    camp.write_text(yaml.safe_dump({"name": "al-validate-bad", "flow": "nafepo4_al", "parameters": params}))
    assert main(["run", str(camp)]) == 2
    assert query_outputs(doc_type="campaign", campaign="al-validate-bad") == []
