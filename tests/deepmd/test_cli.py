"""CLI and doctor: `potential evaluate` for DeePMD models, `potential pretrain` (the session's base),
`mlipflow doctor`'s pretrained-checkpoint check."""

from __future__ import annotations

import json

import pytest


def test_evaluate_dp_model_on_systems_extxyz_and_pickle(dp_pair, dp_data, tmp_path, mlipflow_home):
    from ase.io import write

    from mlipflow.cli.main import main

    model = dp_pair[0].model
    expected = dp_pair[0].test_metrics
    out = tmp_path / "m.json"
    assert main(["potential", "evaluate", model, str(dp_data["dir"] / "test"), "--json", str(out), "--no-progress"]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["n_structures"] == 10 and m["force_rmse"] == pytest.approx(expected.force_rmse, rel=1e-9)
    assert (tmp_path / "m.png").stat().st_size > 1000
    xyz = tmp_path / "test.extxyz"
    write(xyz, dp_data["test_atoms"])
    assert main(["potential", "evaluate", model, str(xyz), "--json", str(out), "--no-progress"]) == 0
    m2 = json.loads(out.read_text())["metrics"]
    assert m2["energy_rmse"] == pytest.approx(expected.energy_rmse, rel=1e-5)
    assert m2["force_rmse"] == pytest.approx(expected.force_rmse, rel=1e-5)
    import pandas as pd

    pkl = tmp_path / "test.pkl.gz"  # energy_corrected differs from energy: DP is compared on total energy
    atoms = dp_data["test_atoms"]
    pd.DataFrame({"ase_atoms": atoms, "energy": [a.get_potential_energy() for a in atoms],
                  "forces": [a.get_forces() for a in atoms],
                  "energy_corrected": [a.get_potential_energy() - 5.0 * len(a) for a in atoms]}).to_pickle(pkl, compression="gzip")
    assert main(["potential", "evaluate", model, str(pkl), "--json", str(out), "--no-progress"]) == 0
    m3 = json.loads(out.read_text())["metrics"]
    assert m3["energy_rmse"] == pytest.approx(expected.energy_rmse, rel=1e-5)
    assert main(["potential", "evaluate", str(tmp_path / "none.pth"), str(xyz)]) == 2
    ckpt = tmp_path / "model.ckpt.pt"
    ckpt.write_bytes(b"x")
    assert main(["potential", "evaluate", str(ckpt), str(xyz)]) == 2


def test_pretrain_cli_made_a_two_head_base(dp_base, mlipflow_home, tmp_path):
    from mlipflow.cli.main import main
    from mlipflow.engines.deepmd import checkpoint_info

    info = checkpoint_info(dp_base["checkpoint"])
    assert info["branches"] == dp_base["branches"] and info["type_map"]["CuNi"] == ["Al", "Cu", "Ni"]
    doc = json.loads((dp_base["workdir"] / "dp_training.json").read_text())
    assert doc["heads"] == ["CuAl", "CuNi"] and doc["numb_steps"] == 80 and doc["n_train_frames"] == 24
    assert {"rmse_f_trn_CuAl", "rmse_f_trn_CuNi"} <= set(doc["lcurve"])
    assert doc["input"]["model"]["shared_dict"]["descriptor_shared"]["type"] == "dpa2"
    assert main(["potential", "pretrain", "--profile", "nope"]) == 2
    assert main(["potential", "pretrain", "--out", str(tmp_path / "base.pth")]) == 2


def test_doctor_reports_the_pretrained_checkpoint(dp_base, mlipflow_home, monkeypatch, tmp_path):
    from mlipflow.doctor import dp_pretrained_check
    from mlipflow.settings import get_settings

    c = dp_pretrained_check(get_settings())
    assert c.ok and not c.required and "not configured" in c.detail
    monkeypatch.setenv("MLIPFLOW_DP_PRETRAINED", str(dp_base["checkpoint"]))
    get_settings.cache_clear()
    c = dp_pretrained_check(get_settings())
    assert c.ok and "branches: CuAl, CuNi" in c.detail and "multi-task" in c.detail and "type map: Al, Cu, Ni" in c.detail
    assert c.extra["branches"] == ["CuAl", "CuNi"]
    monkeypatch.setenv("MLIPFLOW_DP_PRETRAINED", str(tmp_path / "gone.pt"))
    get_settings.cache_clear()
    c = dp_pretrained_check(get_settings())
    assert not c.ok and c.required and "does not exist" in c.detail and "pretrain" in c.fix
