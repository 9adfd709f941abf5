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
