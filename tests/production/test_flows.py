"""The production campaign flows end to end (real LAMMPS, real store on disk) and the paper
profiles' job graphs (built, not run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

TINY_GLASS = yaml.safe_load((Path(__file__).with_name("tiny_glass.yaml")).read_text())


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLIPFLOW_")}
    env.update(MLIPFLOW_HOME=str(home), HOME=str(home.parent), PYTHONPATH=str(ROOT))
    return env


def _run(campaign: dict, tmp_path: Path):
    path = tmp_path / f"{campaign['name']}.yaml"
    path.write_text(yaml.safe_dump(campaign))
    home = tmp_path / "home"
    proc = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "run", str(path)], capture_output=True,
                          text=True, env=_env(home), timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return home, proc


def _outputs(home: Path, doc_type: str) -> list[dict]:
    code = ("import json; from mlipflow.store import query_outputs; "
            f"print(json.dumps([d['output'] for d in query_outputs(doc_type={doc_type!r}, load_blobs=True)], default=str))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(home), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_glass_campaign_tiny(tiny_glass):
    home = tiny_glass["home"]
    out = tiny_glass["proc"].stdout
    assert "glasses (mean ± σ over replicas)" in out and "Arrhenius fits" in out  # the run's tables
    summary = _outputs(home, "campaign")[0]["summary"]
    assert [p["name"] for p in summary["potentials"]] == ["Pedone", "Pedone-ase"]
    assert summary["skipped"] and "no-such-campaign" in summary["skipped"][0]  # optional, absent: noted
    for pot in summary["potentials"]:
        assert pot["replicas"] == 1 and pot["atoms"] == 56 and not pot["unstable_runs"]
        assert 2.0 < pot["density_g_cm3"]["mean"] < 4.5
        assert pot["tg_K"]["mean"] is not None
        assert 3.0 < pot["coordination"]["P-O"]["mean"] <= 4.5
        assert set(pot["bridging_per_former"]) >= {"P-O-P", "P-O-Fe"}  # the paper's Table 1 convention
        d = pot["diffusion_cm2_s"]["nvt"]
        assert set(d) == {"1600", "2000"} and all(v["mean"] > 0 for v in d.values())
        arr = pot["arrhenius"][0]
        assert arr["heating"] == "nvt" and arr["Ea_eV"] is not None
        assert pot["elastic_GPa"]["bulk"]["mean"] > 0
    runs = {r["run_id"]: r for r in _outputs(home, "md_run")}
    assert {r["engine"] for r in runs.values()} == {"lammps", "ase"}
    g = runs["glass-Pedone-0"]
    steps = g["trajectory"]["step"]  # the whole trajectory travelled in the store, unwrapped
    assert g["trajectory"]["unwrapped"] and steps == sorted(steps) and len(steps) == len(set(steps))
    structure = [a for a in _outputs(home, "analysis") if a["kind"] == "structure"]
    w = next(s for s in g["protocol"]["stages"] if s["label"] == "glass")
    assert {a["results"]["n_frames"] for a in structure} == {w["steps"] // 10 + 1}  # only the final stage's frames


@pytest.mark.slow
def test_lfp_md_tiny(tmp_path):
    campaign = yaml.safe_load((ROOT / "examples" / "lfp_md_mini.yaml").read_text())
    p = campaign["parameters"]
    p["cycle"].update(temperatures=[300, 100], ps_per_temperature=0.6)
    p["orderings"] = ["y-order"]
    p["ordering"]["ps"] = p["interface"]["ps"] = 0.8
    home, _ = _run(campaign, tmp_path)
    summary = _outputs(home, "campaign")[0]["summary"]
    assert [r["stage"] for r in summary["runs"]["cycles"]] == ["cool1_300K", "cool1_100K", "heat_300K", "cool2_100K"]
    assert [r["temperature_K"] for r in summary["runs"]["cycles"]] == [300, 100, 300, 100]
    assert [r["label"] for r in summary["runs"]["orderings"]] == ["y-order"]
    assert [r["temperature_K"] for r in summary["runs"]["interface"]] == [200, 300]
    assert set(summary["arrhenius"]) == {"cycles-flip", "cycles-hop", "interface-flip", "interface-hop"}
    pol = [a for a in _outputs(home, "analysis") if a["kind"] == "polarons"]
    assert len(pol) == 7 and all(a["results"]["n_fe"] == 16 for a in pol)


def _paper(name: str, potentials) -> dict:
    campaign = yaml.safe_load((ROOT / "examples" / name).read_text())
    return campaign | {"parameters": campaign["parameters"] | potentials}


def test_paper_profiles_job_graphs(mlipflow_home):
    from mlipflow.campaign import CampaignFile, build_flow
    from mlipflow.workers import iter_jobs

    glass = _paper("nafepo4_glass_paper.yaml", {"potentials": [
        {"name": "A", "potential": "pedone2006"}, {"name": "B", "potential": "pedone2006"}]})
    jobs = list(iter_jobs(build_flow(CampaignFile(**glass))))
    # per potential: 5 glasses x (MD, structure, Tg, elastic + 6 T x 2 heatings x (MD, MSD)) + 2 Arrhenius
    assert len(jobs) == 2 * (5 * (4 + 24) + 2) + 2
    md = [j for j in jobs if j.name.startswith(("glass A", "glass B", "diffusion "))]
    assert len(md) == 2 * 5 * 13 and {j.metadata["need"] for j in md} == {"gpu"}
    assert {j.metadata["need"] for j in jobs if j.name.startswith(("structure", "MSD", "Tg"))} == {"light"}
    lfp = _paper("lfp_md_paper.yaml", {"potential": "pedone2006"})
    jobs = list(iter_jobs(build_flow(CampaignFile(**lfp))))
    runs = [j for j in jobs if j.name.startswith("md ")]
    assert len(runs) == 3 + 5 + 4  # cycles at three x, five orderings, four interface temperatures
    assert len([j for j in jobs if j.name.startswith("polarons")]) == 3 * 25 + 5 + 4


def test_bad_production_campaigns(mlipflow_home):
    from mlipflow.campaign import CampaignFile, build_flow
    from mlipflow.errors import UserError

    base = TINY_GLASS["parameters"]
    for params, message in [
        (base | {"potentials": [{"name": "X", "potential": {"campaign": "absent"}}]}, "no finished campaign 'absent'"),
        (base | {"potentials": [{"name": "X", "potential": "pedone2006", "engine": "gromacs"}]}, "gromacs"),
        (base | {"potentials": [{"name": "X", "potential": "/no/such.classical.yaml"}]}, "does not exist"),
        (base | {"glass": {"melt_K": 3000}}, "protocol arguments"),
        (base | {"replicas": 0}, "replicas"),
    ]:
        with pytest.raises(UserError, match=message):
            build_flow(CampaignFile(name="bad", flow="nafepo4_glass", parameters=params))


def test_rerun_of_a_completed_campaign_adds_nothing(tmp_path):
    """`mlipflow run` of a campaign that completed with the same file says so and adds no
    document; `--restart` runs it again, replacing its documents (same job ids)."""
    campaign = yaml.safe_load((ROOT / "examples" / "example_eos.yaml").read_text())
    home, first = _run(campaign, tmp_path)
    n = len(_outputs(home, "eos_iteration"))
    assert n >= 5 and "is complete" not in first.stdout
    path = tmp_path / f"{campaign['name']}.yaml"
    again = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "run", str(path)], capture_output=True,
                           text=True, env=_env(home), timeout=300, cwd=tmp_path)
    assert again.returncode == 0 and "is complete" in again.stdout and "--restart" in again.stdout
    assert len(_outputs(home, "eos_iteration")) == n
    restart = subprocess.run([sys.executable, "-m", "mlipflow.cli.main", "run", str(path), "--restart"],
                             capture_output=True, text=True, env=_env(home), timeout=300, cwd=tmp_path)
    assert restart.returncode == 0 and "is complete" not in restart.stdout
    assert len(_outputs(home, "eos_iteration")) == n


def test_per_potential_schedules(mlipflow_home):
    """A slow potential (ML in ASE) can get fewer replicas and temperatures than the classical one."""
    from mlipflow.campaign import CampaignFile, build_flow
    from mlipflow.workers import iter_jobs

    mini = yaml.safe_load((ROOT / "examples" / "nafepo4_glass_mini.yaml").read_text())
    entry = mini["parameters"]["potentials"][1]
    assert (entry["replicas"], entry["temperatures"], entry["heating"]) == (1, [1500], ["nvt"])
    mini["parameters"]["potentials"][1] = entry | {"potential": "pedone2006"}
    jobs = list(iter_jobs(build_flow(CampaignFile(**mini))))
    names = [j.name for j in jobs]
    # Pedone: 2 glasses x (MD, structure, Tg, elastic + 3 T x 2 heatings x (MD, MSD)) + 2 Arrhenius;
    # ACE-mini: 1 glass x (4 + 1 x (MD, MSD)) + 1 Arrhenius; cells and summary
    assert len(jobs) == (2 * (4 + 12) + 2) + (4 + 2 + 1) + 2
    assert [n for n in names if n.startswith("diffusion ACE-mini")] == ["diffusion ACE-mini r0 1500 K nvt"]


def test_runs_after_a_blown_up_glass_are_not_run():
    """A diffusion run whose glass blew up is not run; its analysis and the Arrhenius fit say why."""
    from mlipflow.makers.analysis_dynamics import ArrheniusMaker, DiffusionAnalysisMaker
    from mlipflow.makers.md import MDMaker
    from mlipflow.schemas import MDProtocol, MDRunDoc, MDStage

    broken = MDRunDoc(protocol=MDProtocol(stages=[MDStage(steps=10)]), engine="ase", run_id="glass-x-0",
                      terminated=True, termination_reason="unstable: force above 1000.0 eV/Å at step 1240")
    maker = MDMaker(protocol=MDProtocol(stages=[MDStage(steps=10, t_start=1500)]))
    doc = maker.make.original(maker, {"lattice": None}, {"kind": "classical", "paths": {}}, run_id="d", after=broken)
    assert doc.terminated and "glass-x-0" in doc.termination_reason and "step 1240" in doc.termination_reason
    da = DiffusionAnalysisMaker(stage="sample")
    res = da.make.original(da, doc)
    assert "stopped early" in res.results["error"] and res.results["temperature_K"] == 1500
    from mlipflow.makers.analysis_dynamics import GlassTransitionMaker
    from mlipflow.makers.analysis_structure import StructureAnalysisMaker

    for maker in (StructureAnalysisMaker(stage="glass"), GlassTransitionMaker(stage="cool")):
        assert "stopped early" in maker.make.original(maker, broken).results["error"]
    am = ArrheniusMaker()
    fit = am.make.original(am, [res])
    assert fit.results["arrhenius"] is None and "stopped early" in fit.results["error"]
