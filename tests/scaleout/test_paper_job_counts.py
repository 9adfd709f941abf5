"""The paper profile's flow fans out to one job per reference calculation (built, not run: no VASP here).

The dynamic stages are expanded by calling the replacing jobs' functions directly, exactly what a
worker does when it runs them; the counts are those recorded in docs/cluster.md.
"""

from __future__ import annotations

import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(job, *args, **kwargs):
    maker = job.function.__self__
    return type(maker).make.original(maker, *args, **kwargs)


def test_paper_profile_job_counts(mlipflow_home):
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.schemas import DatasetRef, PotentialRef
    from mlipflow.workers import iter_jobs

    flow = build_flow(load_campaign(ROOT / "examples" / "nafepo4_paper.yaml"))
    jobs = {j.name: j for j in iter_jobs(flow)}
    assert [(n, j.metadata["need"]) for n, j in jobs.items()] == [
        ("al_structures", "light"), ("al_initial_dataset", "light"), ("fit_0", "gpu"), ("fixed_test_set", "light"),
        ("iteration_1", "light"), ("stability_first", "gpu"), ("stability_final", "gpu"), ("summarize", "light")]
    sset = _run(jobs["al_structures"], *jobs["al_structures"].function_args)
    init = _run(jobs["al_initial_dataset"], sset, *jobs["al_initial_dataset"].function_args[1:])
    fan = list(iter_jobs(init.replace))
    names = collections.Counter(j.name.split(" ")[0].rstrip("0123456789_") for j in fan)
    # 198 AIMD runs (atomate2 MDMaker, cpu) and 4 isolated atoms (StaticMaker, cpu), each with its
    # parsing job (light), and one gather job
    assert len(fan) == 405
    assert collections.Counter(j.metadata["need"] for j in fan) == {"cpu": 202, "light": 203}
    assert sum(j.name.startswith("aimd_") and j.name.endswith(" frames") for j in fan) == 198
    assert sum(j.name.startswith("isolated_") and j.name.endswith(" frames") for j in fan) == 4
    assert names["gather_initial_dataset"] == 1
    # the fixed test set: 6 AIMD runs (cpu), their parsing jobs and a gather job
    fixed = list(iter_jobs(_run(jobs["fixed_test_set"], {"Na": -1.0, "Fe": -2.0, "P": -3.0, "O": -4.0}).replace))
    assert len(fixed) == 13 and collections.Counter(j.metadata["need"] for j in fixed) == {"cpu": 6, "light": 7}
    args = list(jobs["iteration_1"].function_args)
    args[1], args[2] = PotentialRef(kind="ace", input_hash="0" * 64), DatasetRef(name="nafepo4-paper", version=1)
    it = list(iter_jobs(_run(jobs["iteration_1"], *args).replace))
    assert len(it) == 201 and collections.Counter(j.metadata["need"] for j in it) == {"gpu": 199, "light": 2}
    assert [j.name for j in it[-3:]] == ["select_label_1", "fit_1", "decide_1"]
    assert all(j.config.pass_manager_config is False for j in fan + it)


def test_paper_profile_validation_fans_out_its_vasp_references(mlipflow_home, tmp_path):
    """With `validation: {enabled: true}` and a VASP labeler, every strained cell of the E–V curves
    is its own VASP static (cpu) with its parsing job; the E–V jobs only fit (nothing runs VASP
    inside another job), and the validation reuses the campaign's final stability run."""
    import yaml

    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.workers import iter_jobs

    doc = yaml.safe_load((ROOT / "examples" / "nafepo4_paper.yaml").read_text())
    doc["parameters"]["validation"] = {"enabled": True, "crystals": ["Na2O", "FeO", "NaFePO4-olivine"]}
    path = tmp_path / "paper_validated.yaml"
    path.write_text(yaml.safe_dump(doc))
    flow = build_flow(load_campaign(path))
    jobs = list(iter_jobs(flow))
    (sub,) = [f for f in flow.jobs if f.name == "validate"]
    val = list(iter_jobs(sub))
    refs = [j for j in val if not j.name.startswith("validate_") or "_ref_" in j.name]
    # 3 crystals x 7 volumes: atomate2 static (cpu) + parsing job (light) each
    assert collections.Counter(j.metadata["need"] for j in refs) == {"cpu": 21, "light": 21}
    assert sum(j.name.endswith(" static") for j in refs) == 21
    assert sorted(j.name for j in val if j not in refs) == [
        "validate_eos_FeO", "validate_eos_Na2O", "validate_eos_NaFePO4-olivine", "validate_errors", "validate_gather"]
    assert not any(j.name.startswith("stability") and j.name not in ("stability_first", "stability_final") for j in jobs)
    eos = next(j for j in val if j.name == "validate_eos_Na2O")
    assert len(eos.function_args[-1]) == 7  # the references' outputs, resolved by the manager
