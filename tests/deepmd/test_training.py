"""Real DeePMD-kit training (tiny models, one thread): from scratch, freeze + ASE vs dp test,
fine-tuning a two-head base by branch, bad inputs, a failed training keeping lcurve and log."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from .conftest import TYPE_MAP, emt_atoms, frames_of


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs)


def test_training_from_scratch_lowers_the_loss(dp_pair, dp_data):
    doc = dp_pair[0]
    assert doc.status == "ok" and doc.numb_steps == 150 and doc.n_train_frames == 40 and doc.n_test_frames == 10
    lc = doc.lcurve
    assert lc["step"][0] == 1 and lc["step"][-1] == 150 and {"rmse_trn", "rmse_f_trn", "rmse_e_val", "lr"} <= set(lc)
    assert _mean(lc["rmse_trn"][-4:]) < 0.3 * _mean(lc["rmse_trn"][:2])
    assert _mean(lc["rmse_f_trn"][-4:]) < 0.8 * _mean(lc["rmse_f_trn"][:2])
    assert lc["lr"][-1] < lc["lr"][0] / 50
    # dp test: better than predicting zero forces
    f_rms = float(np.sqrt(np.mean(np.concatenate([a.get_forces().ravel() for a in dp_data["test_atoms"]]) ** 2)))
    assert doc.test_metrics.n_structures == 10 and doc.test_metrics.force_rmse < 0.9 * f_rms
    assert doc.train_metrics.n_structures == 40
    for key in ("train_parity", "test_parity", "lcurve"):
        assert Path(doc.plots[key]).stat().st_size > 1000
    assert Path(doc.log_path).read_text().count("Batch") > 10 and "rmse" in doc.log_tail
    assert doc.input["training"]["numb_steps"] == 150 and doc.input["model"]["type_map"] == TYPE_MAP
    assert dp_pair[1].seed == 1 and dp_pair[1].input["model"]["descriptor"]["seed"] == 1


def test_member_is_cached(dp_pair, dp_data):
    from mlipflow.engines.deepmd import DPSettings, fit_dp_member

    again = fit_dp_member(DPSettings.tiny(), dp_data["train"], dp_data["test"], dp_pair[0].workdir, seed=0)
    assert again.cached and again.test_metrics == dp_pair[0].test_metrics
    assert {"model.pth.b64", "model.ckpt.pt.b64", "lcurve.out", "input.json"} <= set(again.files)


def test_freeze_and_ase_calculator_match_dp_test(dp_pair, dp_data, tmp_path):
    """The frozen .pth through deepmd.calculator.DP (via mlipflow's calculator factory) gives the
    energies and forces `dp test` reports for the same frames."""
    from mlipflow.engines.deepmd import test_dp
    from mlipflow.engines.potentials import calculator

    model = dp_pair[0].model
    res = test_dp(model, dp_data["test"], tmp_path, name="check")
    calc = calculator(model)
    e_ase, f_ase = [], []
    # dp test visits the systems in order, frames in stored order: rebuild that order
    from mlipflow.engines.deepmd import system_dirs

    for sysdir in system_dirs(dp_data["test"]):
        names = (sysdir / "type_map.raw").read_text().split()
        types = np.loadtxt(sysdir / "type.raw", dtype=int)
        coords = np.load(sysdir / "set.000" / "coord.npy")
        boxes = np.load(sysdir / "set.000" / "box.npy")
        from ase import Atoms

        for c, b in zip(coords, boxes):
            at = Atoms([names[t] for t in types], positions=c.reshape(-1, 3), cell=b.reshape(3, 3), pbc=True)
            at.calc = calc
            e_ase.append(at.get_potential_energy())
            f_ase.append(at.get_forces().ravel())
    assert np.allclose(e_ase, res.energy_total_pred, atol=1e-6)
    assert np.allclose(np.concatenate(f_ase), res.force_pred, atol=1e-6)
    assert res.metrics == dp_pair[0].test_metrics


@pytest.mark.slow
def test_finetune_from_two_head_base_selects_the_branch(dp_base, dp_data, tmp_path):
    """With a (near-)zero learning rate the fine-tuned model's forces are those of the chosen
    head of the base (the out bias is re-fitted, which shifts energies, not forces)."""
    from deepmd.infer import DeepPot

    from mlipflow.engines.deepmd import DPSettings, checkpoint_info, freeze_dp, system_dirs, train_dp

    ckpt = dp_base["checkpoint"]
    info = checkpoint_info(ckpt)
    assert info["multitask"] and info["branches"] == ["CuAl", "CuNi"] and set(info["descriptor"].values()) == {"dpa2"}
    assert info["type_map"]["CuAl"] == ["Al", "Cu", "Ni"]
    s = DPSettings.tiny(start_lr=1e-10, stop_lr=1e-10, numb_steps=3, disp_freq=1)
    doc = train_dp(s, dp_data["train"], None, tmp_path / "ft", finetune=ckpt, model_branch="CuNi")
    assert doc.status == "ok" and doc.model_branch == "CuNi" and doc.finetune_digest
    log = Path(doc.log_path).read_text()
    assert "--model-branch CuNi" in log and "--use-pretrain-script" in log and "pretrained branch 'CuNi'" in log
    ft = freeze_dp(doc.checkpoint, tmp_path / "ft.pth")
    heads = {h: freeze_dp(ckpt, tmp_path / f"{h}.pth", head=h) for h in ("CuAl", "CuNi")}
    sysdir = system_dirs(dp_data["test"])[0]
    coord = np.load(sysdir / "set.000" / "coord.npy")
    box = np.load(sysdir / "set.000" / "box.npy")
    names = (sysdir / "type_map.raw").read_text().split()
    types = np.loadtxt(sysdir / "type.raw", dtype=int)
    forces = {}
    for name, path in {"ft": ft, **heads}.items():
        dp = DeepPot(str(path))
        forces[name] = dp.eval(coord, box, [dp.get_type_map().index(names[t]) for t in types])[1]
    d_cuni = np.abs(forces["ft"] - forces["CuNi"]).max()
    d_cual = np.abs(forces["ft"] - forces["CuAl"]).max()
    assert d_cuni < 1e-5 and d_cual > 100 * max(d_cuni, 1e-9)


def test_bad_base_inputs_are_clear_errors(dp_base, dp_pair, dp_data, tmp_path):
    from mlipflow.engines.deepmd import DPSettings, check_base, train_dp
    from mlipflow.errors import UserError

    s = DPSettings.tiny(numb_steps=2)
    with pytest.raises(UserError, match=r"has no model branch 'Anode'; its branches are: CuAl, CuNi"):
        train_dp(s, dp_data["train"], None, tmp_path / "a", finetune=dp_base["checkpoint"], model_branch="Anode")
    with pytest.raises(UserError, match="does not exist") as e:
        train_dp(s, dp_data["train"], None, tmp_path / "b", finetune=tmp_path / "missing.pt")
    assert "mlipflow potential pretrain" in str(e.value)
    with pytest.raises(UserError, match=r"frozen model \(\.pth\); fine-tuning needs the training checkpoint \(\.pt\)"):
        train_dp(s, dp_data["train"], None, tmp_path / "c", finetune=dp_pair[0].model)
    renamed = tmp_path / "frozen_really.pt"  # a TorchScript archive under a .pt name
    renamed.write_bytes(Path(dp_pair[0].model).read_bytes())
    with pytest.raises(UserError, match="frozen model"):
        check_base(renamed, None, ["Cu"])
    with pytest.raises(UserError, match=r"elements \['Au'\] that the base base.pt \(branch CuAl\) does not know") as e:
        check_base(dp_base["checkpoint"], "CuAl", ["Au", "Cu"])
    assert "allow_new_types" in str(e.value) and "train from scratch" in str(e.value)
    assert check_base(dp_base["checkpoint"], "CuAl", ["Au", "Cu"], allow_new_types=True)["branch"] == "CuAl"
    with pytest.raises(UserError, match="single-task model"):
        check_base(Path(dp_pair[0].workdir) / "model.ckpt.pt", "CuAl", ["Cu"])
    not_torch = tmp_path / "junk.pt"
    not_torch.write_text("hello")
    with pytest.raises(UserError, match="cannot read .* as a DeePMD-kit PyTorch checkpoint"):
        check_base(not_torch, None, ["Cu"])
    assert not (tmp_path / "a").exists()  # nothing ran


def test_bad_data_is_a_clear_error(tmp_path):
    from mlipflow.engines.deepmd import DPSettings, export_frames, train_dp
    from mlipflow.errors import UserError

    s = DPSettings.tiny(numb_steps=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="training data is empty") as e:
        train_dp(s, tmp_path / "empty", None, tmp_path / "w")
    assert "label" in str(e.value)
    systems = export_frames(frames_of(emt_atoms(3, 5), "nan"), tmp_path / "nan", TYPE_MAP)
    with pytest.raises(UserError, match="type map .* lacks"):
        train_dp(s, tmp_path / "nan", None, tmp_path / "w", type_map=["Cu"])
    f = systems[0] / "set.000" / "energy.npy"
    e_arr = np.load(f)
    e_arr[0] = np.nan
    np.save(f, e_arr)
    with pytest.raises(UserError, match=r"NaN/inf energy labels in training data .* \(frames \[0\]\)") as e:
        train_dp(s, tmp_path / "nan", None, tmp_path / "w")
    assert "relabel" in str(e.value)
    assert not (tmp_path / "w").exists()


FAKE_DP = '''
import sys, time
from pathlib import Path
print("DEEPMD INFO    Start to train 100 steps.", flush=True)
rows = []
with open("lcurve.out", "w") as fh:
    fh.write("# step       rmse_trn    rmse_e_trn    rmse_f_trn   lr\\n")
    for step, r in ((1, 30.0), (10, 12.0), (20, 6.0)):
        fh.write(f"{step:7d}  {r:.2e}  1.0e-01  {r/30:.2e}  1.0e-03\\n")
        print(f"DEEPMD INFO    Batch {step:7d}: trn: rmse = {r:.2e}, rmse_e = 1.0e-01, rmse_f = {r/30:.2e}, lr = 1.0e-03", flush=True)
print("Traceback (most recent call last):", flush=True)
print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB", flush=True)
sys.exit(1)
'''


def test_failed_training_keeps_lcurve_and_log(dp_data, tmp_path):
    """A training that dies after 20 steps: DPTrainingError with the diagnosis and its document,
    which holds the parsed lcurve and the log tail; the files stay in the work directory."""
    from mlipflow.engines.deepmd import DPSettings, DPTrainingError, train_dp

    fake = tmp_path / "fake_dp.py"
    fake.write_text(FAKE_DP)
    with pytest.raises(DPTrainingError, match="ran out of memory") as e:
        train_dp(DPSettings.tiny(), dp_data["train"], None, tmp_path / "run", cmd=f"{sys.executable} {fake}")
    doc = e.value.doc
    assert e.value.fix and "batch_size" in e.value.fix
    assert doc.status == "failed" and "out of memory" in doc.error
    assert doc.lcurve["step"] == [1.0, 10.0, 20.0] and doc.lcurve["rmse_trn"] == [30.0, 12.0, 6.0]
    assert "CUDA out of memory" in doc.log_tail and "Batch" in doc.log_tail
    assert (tmp_path / "run" / "lcurve.out").is_file() and (tmp_path / "run" / "train.log").is_file()
    assert '"status": "failed"' in (tmp_path / "run" / "dp_training.json").read_text()
