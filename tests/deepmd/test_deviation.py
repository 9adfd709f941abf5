"""Model deviation through DeePMD-kit's API equals the standard deviation of the ensemble's forces
computed by hand (and DPKind.uncertainty_of agrees); trust levels; the DeviationSelector; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import emt_atoms


def _hand_deviation(models, frames):
    """Per frame: max over atoms of |std over models of the force vector| (DP-GEN's max_devi_f),
    the mean, and the std over models of the energy per atom."""
    from deepmd.calculator import DP

    calcs = [DP(model=str(m)) for m in models]
    max_f, avg_f, dev_e = [], [], []
    for at in frames:
        fs, es = [], []
        for c in calcs:
            a = at.copy()
            a.calc = c
            es.append(a.get_potential_energy() / len(a))
            fs.append(a.get_forces())
        fs = np.array(fs)                                   # (models, atoms, 3)
        mean = fs.mean(axis=0)
        per_atom = np.sqrt(((fs - mean) ** 2).sum(axis=-1).mean(axis=0))  # sqrt(sum_k var_k)
        max_f.append(per_atom.max())
        avg_f.append(per_atom.mean())
        dev_e.append(np.std(es))
    return np.array(max_f), np.array(avg_f), np.array(dev_e)


@pytest.fixture(scope="module")
def frames():
    """Fresh cells the models have not seen (some with more Al, larger rattles)."""
    out = emt_atoms(6, 11, max_other=6)
    for i, a in enumerate(out):
        a.rattle(0.05 * i, seed=i)
    return out


def test_model_deviation_is_std_of_ensemble_forces(dp_pair, frames, mlipflow_home):
    from mlipflow.engines.deepmd import model_deviation
    from mlipflow.engines.potentials import materialize
    from mlipflow.schemas import PotentialRef

    models = [d.model for d in dp_pair]
    dev = model_deviation(models, frames)
    max_f, avg_f, dev_e = _hand_deviation(models, frames)
    assert dev.n_models == 2 and len(dev.max_devi_f) == len(frames)
    assert np.allclose(dev.max_devi_f, max_f, rtol=1e-6, atol=1e-9)
    assert np.allclose(dev.avg_devi_f, avg_f, rtol=1e-6, atol=1e-9)
    assert np.allclose(dev.devi_e, dev_e, rtol=1e-6, atol=1e-12)
    assert (dev.max_devi_f > 0).all() and (dev.min_devi_f <= dev.avg_devi_f).all()
    # the potential kind's uncertainty (what the MD engines stop on) is the same number
    pot = materialize(PotentialRef(kind="dp", paths={"model": models[0], "model_1": models[1]}))
    assert pot.elements == ["Al", "Cu"]
    calc = pot.ase_calculator(uncertainty=True)
    for at, expected in zip(frames, max_f):
        a = at.copy()
        a.calc = calc
        a.get_potential_energy()
        assert pot.uncertainty_of(a) == pytest.approx(expected, rel=1e-6)


def test_trust_levels():
    from mlipflow.engines.deepmd import classify, trust_ratios
    from mlipflow.errors import UserError

    devs = [0.01, 0.049999, 0.05, 0.1, 0.149, 0.15, 0.4, float("nan")]
    classes = classify(devs, 0.05, 0.15)
    assert classes == ["accurate", "accurate", "candidate", "candidate", "candidate", "failed", "failed", "failed"]
    assert trust_ratios(classes) == {"accurate": 0.25, "candidate": 0.375, "failed": 0.375}
    assert trust_ratios([]) == {"accurate": 0.0, "candidate": 0.0, "failed": 0.0}
    with pytest.raises(UserError, match="above f_trust_hi"):
        classify(devs, 0.2, 0.1)


def _run_doc(frames, run_id, thermo=None, terminated=False):
    from mlipflow.engines.ase_md import frames_to_dict
    from mlipflow.schemas import MDProtocol, MDRunDoc, MDStage

    for i, f in enumerate(frames):
        f.info.update(step=10 * (i + 1), temperature_K=300.0, reason="gamma")
    return MDRunDoc(protocol=MDProtocol(stages=[MDStage(steps=10 * len(frames))]), engine="ase", run_id=run_id,
                    trajectory=frames_to_dict(frames), thermo={"max_gamma": thermo or []}, terminated=terminated)


def test_deviation_selector(dp_pair, frames, mlipflow_home):
    """Candidates between the trust levels are selected (capped, highest first, or thinned); the
    keys are MaxVolSelector's plus ratios; ratios count the explorations' measured deviations."""
    from mlipflow.engines.deepmd import model_deviation
    from mlipflow.makers.deepmd import DeviationSelector
    from mlipflow.schemas import PotentialRef

    ref = PotentialRef(kind="dp", paths={"model": dp_pair[0].model, "model_1": dp_pair[1].model})
    dev = model_deviation([d.model for d in dp_pair], frames).max_devi_f
    order = np.sort(dev)
    lo, hi = float((order[0] + order[1]) / 2), float((order[-2] + order[-1]) / 2)  # 1 accurate, 4 candidates, 1 failed
    runs = [_run_doc([f.copy() for f in frames[:3]], "r0", thermo=[0.0, 0.0, 0.0, 1e3], terminated=True),
            _run_doc([f.copy() for f in frames[3:]], "r1")]
    sel = DeviationSelector(f_trust_lo=lo, f_trust_hi=hi, max_structures=3).select(runs, ref)
    assert set(sel) == {"selected", "selected_indices", "records", "n_candidates", "n_selected", "gamma_stats",
                        "terminated_runs", "time_s", "ratios"}
    assert sel["n_candidates"] == 6 and len(sel["records"]) == 6 and sel["terminated_runs"] == ["r0"]
    cand = [i for i in range(6) if lo <= dev[i] < hi]
    assert len(cand) == 4 and sel["n_selected"] == 3 and len(sel["selected"]) == 3
    assert sel["selected_indices"] == sorted(cand, key=lambda i: -dev[i])[:3]  # highest deviation first
    recs = sel["records"]
    assert [r["max_gamma"] for r in recs] == pytest.approx(list(dev), rel=1e-4)  # positions stored to 1e-6 Å
    assert sum(r["selected"] for r in recs) == 3 and recs[0]["run"] == "r0" and recs[3]["run"] == "r1"
    assert any(r["reason"].startswith("accurate") for r in recs) and any(r["reason"].startswith("failed") for r in recs)
    assert any("over the cap of 3" in r["reason"] for r in recs)
    # ratios: run r0 measured 4 deviations (3 accurate, 1 failed), run r1 has none: its 3 frames count
    r1 = [lo <= dev[i] < hi for i in range(3, 6)]
    assert sel["ratios"]["accurate"] == pytest.approx((3 + sum(dev[i] < lo for i in range(3, 6))) / 7)
    assert sel["ratios"]["candidate"] == pytest.approx(sum(r1) / 7)
    assert sel["gamma_stats"]["max"] == pytest.approx(dev.max(), rel=1e-4)
    from pymatgen.core import Structure

    assert len(Structure.from_dict(sel["selected"][0])) == 8
    thin = DeviationSelector(f_trust_lo=lo, f_trust_hi=hi, max_structures=2, thin=True).select(runs, ref)
    assert thin["n_selected"] == 2 and thin["selected_indices"][0] == sel["selected_indices"][0]
    assert set(thin["selected_indices"]) <= set(cand)
    assert any(r["reason"].startswith("candidate: thinned") for r in thin["records"])


def test_selector_needs_an_ensemble(dp_pair, mlipflow_home):
    from mlipflow.errors import UserError
    from mlipflow.makers.deepmd import DeviationSelector
    from mlipflow.schemas import PotentialRef

    with pytest.raises(UserError, match="ensemble of at least two"):
        DeviationSelector().select([], PotentialRef(kind="dp", paths={"model": dp_pair[0].model}))


def test_cli_deviation(dp_pair, frames, tmp_path, mlipflow_home):
    from ase.io import write

    from mlipflow.cli.main import main
    from mlipflow.engines.deepmd import model_deviation

    traj = tmp_path / "traj.extxyz"
    write(traj, frames)
    out = tmp_path / "devi.json"
    models = [d.model for d in dp_pair]
    rc = main(["potential", "deviation", *models, str(traj), "--json", str(out), "--f-trust-lo", "0.0",
               "--f-trust-hi", "1e6"])
    assert rc == 0
    data = json.loads(out.read_text())
    dev = model_deviation(models, frames)
    assert data["n_frames"] == 6 and data["ratios"] == {"accurate": 0.0, "candidate": 1.0, "failed": 0.0}
    assert [f["max_devi_f"] for f in data["frames"]] == pytest.approx(list(dev.max_devi_f))
    assert {"min_devi_f", "avg_devi_f", "devi_e", "class"} <= set(data["frames"][0])
    assert main(["potential", "deviation", models[0], str(traj), "--json", str(out)]) == 2
    assert main(["potential", "deviation", *models, str(tmp_path / "none.xyz"), "--json", str(out)]) == 2


def test_cli_pool_select_by_deviation(dp_pair, frames, tmp_path, mlipflow_home):
    """`potential select POOL --from m0.pth --from m1.pth --max N`: the candidates between the trust
    levels, highest deviation first, written to --out with their labels, and a stored document."""
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    from mlipflow.cli.main import main
    from mlipflow.engines.deepmd import model_deviation
    from mlipflow.store import query_outputs

    models = [d.model for d in dp_pair]
    labelled = []
    for k, f in enumerate(frames):
        a = f.copy()
        a.calc = SinglePointCalculator(a, energy=-1.0 * k, forces=np.full((len(a), 3), 0.1 * k))
        labelled.append(a)
    pool = tmp_path / "pool"
    pool.mkdir()
    write(pool / "a.extxyz", labelled[:3])
    write(pool / "b.extxyz", labelled[3:])
    (pool / "summary.json").write_text("{}")  # a generator's summary is skipped, not read
    dev = model_deviation(models, frames).max_devi_f
    order = np.sort(dev)
    lo, hi = float((order[0] + order[1]) / 2), float((order[-2] + order[-1]) / 2)
    out = tmp_path / "chosen.extxyz"
    rc = main(["potential", "select", str(pool), "--from", models[0], "--from", models[1], "--max", "3",
               "--out", str(out), "--f-trust-lo", str(lo), "--f-trust-hi", str(hi)])
    assert rc == 0
    cand = sorted((i for i in range(6) if lo <= dev[i] < hi), key=lambda i: -dev[i])[:3]
    chosen = read(out, index=":")
    assert len(chosen) == 3
    assert [a.get_potential_energy() for a in chosen] == pytest.approx([-1.0 * i for i in cand])
    docs = query_outputs(doc_type="selection")
    assert len(docs) == 1
    doc = docs[0]["output"]
    assert doc["method"] == "deviation" and doc["n_candidates"] == 6 and doc["selected_indices"] == cand
    assert doc["records"][0]["run"] == "a.extxyz#0" and doc["records"][3]["run"] == "b.extxyz#0"
    # bad input: one .pth alone is no ensemble; a .pth next to a non-model; a pool that is nothing
    assert main(["potential", "select", str(pool), "--from", models[0], "--max", "3", "--out", str(out)]) == 2
    assert main(["potential", "select", "no-such-dataset", "--from", models[0], "--from", models[1], "--max", "3"]) == 2
