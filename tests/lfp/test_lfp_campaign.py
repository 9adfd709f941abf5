"""The LixFePO4 campaign (flow ``lfp_dpa``): configurations, the paper profile's numbers and job
graph (built and submitted, not run: no VASP here), bad parameters, and the whole campaign with
tiny settings (CHGNet labels, a locally trained base, real DeePMD fine-tuning, ASE MD, polarons)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny_lfp.yaml")  # run once per session: conftest.tiny_lfp


def _run(job, *args, **kwargs):
    maker = job.function.__self__
    return type(maker).make.original(maker, *args, **kwargs)


# ----------------------------------------------------------------------------- configurations


def test_named_configurations():
    from mlipflow.generation.olivine import NAMED_CONFIGURATIONS, named_configuration

    cells = {n: named_configuration(n, (1, 2, 2)) for n in NAMED_CONFIGURATIONS}
    for name, (_st, info) in cells.items():
        assert info["configuration"] == name and info["charge"] == 0
        if name != "interface":
            assert info["x_actual"] == 0.5 and info["n_fe3"] == 8
    d1, d2 = cells["D1"][1], cells["D2"][1]
    assert d1["removed_li_sites"] != d2["removed_li_sites"]  # seeded, different
    assert cells["x-order"][1]["removed_planes"]["axis"] == "x"
    assert cells["y-order"][1]["removed_planes"]["axis"] == "y"
    assert cells["interface"][1]["interface"]["axis"] == "y"
    # the seed argument shifts the name's own seed: D1 with seed 1 is D2
    assert named_configuration("D1", (1, 2, 2), seed=1)[1]["removed_li_sites"] == d2["removed_li_sites"]
    # any supercell
    st, info = named_configuration("y-order", (2, 2, 1))
    assert info["x_actual"] == 0.5 and len(st) == 4 * 28 - 8


def test_random_configurations_are_distinct():
    from mlipflow.errors import UserError
    from mlipflow.generation.olivine import random_configurations

    cells = random_configurations(40, (1, 2, 2), seed=3)
    keys = {(i["x_actual"], tuple(i["removed_li_sites"]), tuple(i["fe3_sites"])) for _, i in cells}
    assert len(keys) == 40
    xs = [i["x_actual"] for _, i in cells]
    assert xs[:15] == [k / 16 for k in range(1, 16)] and xs[15] == 1 / 16  # every interior x in turn
    assert all(i["n_fe3"] == i["n_li_removed"] for _, i in cells)
    with pytest.raises(UserError, match="x = 0 and x = 1 have a single configuration"):
        random_configurations(2, (1, 1, 1), x_values=[1.0])


def test_cli_named_configuration(tmp_path, mlipflow_home, capsys):
    from mlipflow.cli.main import main

    out = tmp_path / "d2.extxyz"
    assert main(["generate", "olivine", "--config", "D2", "--supercell", "1,2,2", "--out", str(out)]) == 0
    info = json.loads(Path(str(out) + ".json").read_text())
    assert info["configuration"] == "D2" and info["x_actual"] == 0.5 and info["seed"] == 2
    capsys.readouterr()
    assert main(["generate", "olivine", "--config", "D9", "--out", str(out)]) == 2
    assert "unknown configuration 'D9'" in capsys.readouterr().err


def test_fe_radii_see_contracted_octahedra():
    from mlipflow.generation.olivine import olivine_supercell
    from mlipflow.makers.lfp import fe_radii

    st, info = olivine_supercell((1, 2, 2), x=0.5, seed=0, contraction=0.96)
    r = fe_radii(st)
    fe = [i for i, s in enumerate(st) if s.specie.symbol == "Fe"]
    fe3 = np.isin(fe, info["fe3_sites"])
    assert r.shape == (16,) and 2.0 < r[~fe3].mean() < 2.25 and r[fe3].max() < r[~fe3].min()


# ----------------------------------------------------------------------------- the paper profile


def test_paper_profile_numbers_and_job_graph(mlipflow_home):
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.flows.lfp_dpa import LfpDpaConfig
    from mlipflow.workers import iter_jobs

    camp = load_campaign(ROOT / "examples" / "lfp_paper.yaml")
    cfg = LfpDpaConfig(**camp.parameters)
    assert cfg.labeler == "vasp:lixfepo4_dpa" and camp.name == "lixfepo4"
    r, a, f = cfg.relax, cfg.aimd, cfg.fit
    assert (r.n_cells, r.supercell, r.n_configurations, r.frames_per_configuration) == (126, [1, 2, 2], 20, 41)
    assert (a.temperature, a.ps, a.timestep_fs, len(a.x_values), a.supercell) == (550, 1.0, 4, 9, [1, 2, 2])
    assert a.compositions == [0, 0.25, 0.5, 0.75, 1] and a.frames_per_composition == 150
    assert r.n_configurations * r.frames_per_configuration + 5 * a.frames_per_composition == 1570
    assert f.preset == "lixfepo4_paper" and f.branch == "Domains_Anode" and f.base.endswith("DPA-2.3.1-v3.0.0rc0.pt")
    assert cfg.validation.steps_before == 50 and cfg.validation.perturbations == [0.05, 0.12]
    assert cfg.md["supercell"] == [2, 4, 6] and cfg.md["engine"] == "lammps"

    jobs = list(iter_jobs(build_flow(camp)))
    names = collections.Counter(j.name for j in jobs)
    md = [j for j in jobs if j.name.startswith("md ")]
    assert len(md) == 3 + 5 + 4 and {j.metadata["need"] for j in md} == {"gpu"}
    assert sum(n.startswith("polarons") for n in names.elements()) == 3 * 25 + 5 + 4
    assert {j.metadata["need"] for j in jobs if j.name in ("dp finetune member 0", "lfp validation")} == {"gpu"}
    assert {j.metadata["need"] for j in jobs if j.name in ("lfp labels", "dp finetune gather", "lfp summary")} == {"light"}
    fine = next(j for j in jobs if j.name == "dp finetune member 0").function.__self__
    assert fine.finetune.endswith("DPA-2.3.1-v3.0.0rc0.pt") and fine.model_branch == "Domains_Anode"
    assert fine.settings.start_lr == 1e-3 and fine.settings.decay_rate == 0.526 and fine.settings.epochs == 120

    # the labelling stage fans out to one atomate2 VASP job per relaxation and per AIMD run
    by = {j.name: j for j in jobs}
    starts = _run(by["relaxation starts"])
    cells = _run(by["aimd cells"])
    assert len(starts.structures) == 126 and len(cells.structures) == 9
    assert all(len(s["sites"]) in range(84, 113) for s in starts.structures)
    fan = list(iter_jobs(_run(by["lfp labels"], starts, cells).replace))
    frames = [j for j in fan if j.name.endswith(" frames")]
    assert sum(j.name.startswith("relax_") for j in frames) == 126
    assert sum(j.name.startswith("aimd_") for j in frames) == 9
    vasp = [j for j in fan if type(getattr(j.function, "__self__", None)).__module__.startswith("atomate2.vasp")]
    assert {j.metadata["need"] for j in vasp} == {"cpu"} and len(vasp) >= 135  # the calculations themselves
    from pymatgen.core import Structure

    md_maker = next(j for j in vasp if type(j.function.__self__).__name__ == "MDMaker").function.__self__
    incar = md_maker.input_set_generator.get_input_set(Structure.from_dict(cells.structures[0]), potcar_spec=True).incar
    assert (incar["TEBEG"], incar["TEEND"], incar["POTIM"], incar["NSW"]) == (550, 550, 4, 250)
    assert incar["ENCUT"] == 520 and 5.3 in incar["LDAUU"]


def test_paper_profile_submits_to_fireworks(tmp_path, campaign_tools):
    """Submitted with `mlipflow submit` to a mongomock-persistence LaunchPad (no MongoDB server can
    run here): one Firework per job of the built flow, each with its category."""
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.workers import iter_jobs

    campaign_env, _ = campaign_tools
    env = campaign_env(tmp_path / "home")
    mm = tmp_path / "mongomock.json"
    mm.write_text("{}")
    lp = tmp_path / "my_launchpad.yaml"
    lp.write_text("host: localhost\nport: 27017\nname: fw_lfp\n")
    env["MONGOMOCK_SERVERSTORE_FILE"] = str(mm)
    env["MLIPFLOW_CATEGORIES"] = json.dumps({"cpu": "cpu", "gpu": "gpu", "light": "light"})  # a cluster's settings
    r = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "submit", str(ROOT / "examples" / "lfp_paper.yaml"),
                        "--launchpad", str(lp)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wf = json.loads(r.stdout.strip().splitlines()[-1])
    old = dict(os.environ)
    os.environ.update(MLIPFLOW_HOME=str(tmp_path / "home"))
    try:
        n = len(list(iter_jobs(build_flow(load_campaign(ROOT / "examples" / "lfp_paper.yaml")))))
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert wf["fireworks"] == n
    assert set(wf["categories"]) == {"gpu", "light"}  # the cpu (VASP) jobs appear when the labels fan out
    assert wf["categories"]["gpu"] == 3 + 5 + 4 + 1 + 1  # MD runs, fine-tuning, validation


def test_bad_lfp_parameters(mlipflow_home):
    from mlipflow.campaign import CampaignFile, build_flow
    from mlipflow.errors import UserError

    base = yaml.safe_load(TINY.read_text())["parameters"]
    for params, message in [
        (base | {"md": {**base["md"], "potential": "pedone2006"}}, "md.potential is set"),
        (base | {"fit": {**base["fit"], "base": "/x/base.pt"}}, "both base and pretrain"),
        (base | {"fit": {"base": "/x/model.pth"}}, "not a training checkpoint"),
        (base | {"fit": {"preset": "huge"}}, "fit.preset"),
        (base | {"labeler": "nosuch"}, "nosuch"),
        (base | {"relax": {**base["relax"], "n_cells": 0}}, "relax.n_cells"),
        (base | {"aimd": {**base["aimd"], "temperature": -5}}, "aimd.temperature"),
        (base | {"md": {**base["md"], "engine": "gromacs"}}, "gromacs"),
        (base | {"fit": {"pretrain": {"layers": 3}}}, "fit.pretrain"),
    ]:
        with pytest.raises(UserError, match=message):
            build_flow(CampaignFile(name="bad", flow="lfp_dpa", parameters=params))


# ----------------------------------------------------------------------------- the campaign, tiny


def _outputs(env, doc_type: str) -> list[dict]:
    code = ("import json; from mlipflow.store import query_outputs; "
            f"print(json.dumps([d['output'] for d in query_outputs(doc_type={doc_type!r})], default=str))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_tiny_campaign_every_stage_in_the_store(tiny_lfp, campaign_tools):
    first = tiny_lfp["first"]
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    env = tiny_lfp["env"]
    lab = _outputs(env, "lfp_labeling")
    assert len(lab) == 1
    lab = lab[0]
    assert (lab["n_relaxations"], lab["n_aimd_runs"]) == (3, 2) and lab["n_relaxations_ok"] == 3
    assert len(lab["sampled_configurations"]) == 2 and 2 <= lab["n_sampled_relax"] <= 10
    assert lab["n_sampled_aimd"] == {"0.5": 6, "1": 6}
    starts = lab["validation"]
    assert len(starts) == 2 and all(0 < v["steps_before"] <= 5 for v in starts)
    flags = [v["in_training"] for v in starts]
    assert flags == sorted(flags) or lab["n_relaxations_converged"] < 3  # converged unsampled relaxations first
    pots = _outputs(env, "potential")
    assert sorted("base" in p["tags"] for p in pots) == [False, True]
    val = _outputs(env, "lfp_validation")[0]
    assert [r["start"] for r in val["rates"]] == ["before_convergence", "perturbed_0.05", "perturbed_0.12"]
    assert all(r["n"] == 2 for r in val["rates"]) and "magnetic moments" in val["reference_valence"]
    assert len(val["radii_A"]["reference"]) == 2 * 4 and Path(val["plots"]["validation"]).is_file()
    runs = _outputs(env, "md_run")
    assert sorted(r["run_id"] for r in runs) == ["lfp-cycle-x0.5", "lfp-interface-300K", "lfp-ordering-y-order"]
    pol = [a for a in _outputs(env, "analysis") if a["kind"] == "polarons"]
    assert len(pol) == 4 + 1 + 1 and all(a["results"]["n_fe"] == 16 for a in pol)
    camp = _outputs(env, "campaign")
    assert len(camp) == 1
    s = camp[0]["summary"]
    final = next(p for p in pots if "base" not in p["tags"])
    assert s["final_potential"]["uuid"] == final["ref"]["uuid"] and s["labeler"] == "chgnet"
    assert s["n_train_frames"] + s["n_test_frames"] == lab["n_sampled_relax"] + 12
    assert s["base_test_metrics"]["force_rmse"] > 0 and s["test_metrics"]["force_rmse"] > 0
    assert [r["start"] for r in s["validation"]] == [r["start"] for r in val["rates"]]
    assert [r["stage"] for r in s["md"]["runs"]["cycles"]] == ["cool1_300K", "cool1_150K", "heat_300K", "cool2_150K"]
    assert set(s["md"]["arrhenius"]) == {"cycles-flip", "cycles-hop", "interface-flip", "interface-hop"}
    assert "Fine-tuned model" in first.stdout and "validation" in first.stdout  # the run's tables


@pytest.mark.slow
def test_tiny_campaign_rerun_is_a_no_op(tiny_lfp, campaign_tools):
    _, type_counts = campaign_tools
    assert tiny_lfp["first"].returncode == 0
    before = type_counts(tiny_lfp["home"])
    again = tiny_lfp["run"]()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "complete" in again.stdout
    assert type_counts(tiny_lfp["home"]) == before
