"""jobflow-remote as mlipflow's second launcher: `mlipflow.remote.submit_remote` + jobflow-remote's Runner.

No MongoDB server can run on this machine: mongomock (maggma ``MemoryStore``) stands in for
MongoDB, for both the queue database (jobs, flows, auxiliary) and the job store. The submitter and
the Runner therefore live in this one process, and two monkeypatches (fixture ``shared_mongomock``)
make them see one database: every plain ``MemoryStore`` connects to one shared mongomock server,
and closing a ``MemoryStore`` does not wipe it (mongomock-ng's ``MongoClient.close()`` clears
every database of its server, and jobflow-remote closes stores after each step).

The jobs themselves run as jobflow-remote runs them on a cluster: the Runner writes each job's
inputs to its directory, a ``local`` worker (scheduler ``shell``) starts ``jf execution run`` in a
separate process, which never sees the database (its store is a JSON file in the job directory),
and the Runner moves the outputs into the job store.
"""

from __future__ import annotations

import collections
import json
import os
import string
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("jobflow_remote")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROJECT_FILE = DEPLOY / "jobflow_remote_project.yaml"
EOS = ROOT / "examples" / "example_eos.yaml"
TINY = ROOT / "examples" / "al_tiny_emt.yaml"
# kind of node -> worker name; names differ from the kinds, so the mapping is what is tested
CATEGORIES = {"cpu": "cpu_node", "gpu": "gpu_node", "light": "login"}


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def shared_mongomock(monkeypatch):
    """One mongomock server for every plain MemoryStore (the stand-in for one MongoDB)."""
    import mongomock_ng
    from maggma.stores import MemoryStore
    from mongomock_ng.store import ServerStore

    server = ServerStore()
    connect, close = MemoryStore.connect, MemoryStore.close

    def shared_connect(self, force_reset: bool = False):
        if type(self) is not MemoryStore:  # JSONStore & co. (jobflow-remote's per-job files): unchanged
            return connect(self, force_reset)
        if self._coll is None or force_reset:
            self._coll = mongomock_ng.MongoClient(_store=server).db[self.name]

    def keep_on_close(self):
        if type(self) is not MemoryStore:
            return close(self)
        # mongomock-ng's MongoClient.close() would clear the shared server's databases

    monkeypatch.setattr(MemoryStore, "connect", shared_connect)
    monkeypatch.setattr(MemoryStore, "close", keep_on_close)
    return server


@pytest.fixture
def jfr(tmp_path, monkeypatch, mlipflow_home, shared_mongomock):
    """A temporary jobflow-remote projects folder; returns a function that writes a project."""
    import jobflow_remote

    folder = tmp_path / "jfremote"
    folder.mkdir()
    monkeypatch.setenv("JFREMOTE_PROJECTS_FOLDER", str(folder))
    # jobflow-remote reads its settings once, at import
    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
    monkeypatch.setattr(jobflow_remote.SETTINGS, "project", None)
    monkeypatch.setenv("MLIPFLOW_CATEGORIES", json.dumps(CATEGORIES))
    from mlipflow.settings import get_settings

    get_settings.cache_clear()
    jf = Path(sys.executable).with_name("jf")

    def write(name="mlipflow-test", workers=tuple(CATEGORIES.values()), queue=None, jobstore=None, exec_config=None):
        base = tmp_path / "jfr" / name
        project = {
            "name": name, "base_dir": str(base),
            "workers": {w: {"type": "local", "scheduler_type": "shell", "work_dir": str(tmp_path / "work" / w),
                            "execution_cmd": f"{jf} -fe execution run {{}}", "timeout_execute": 120}
                        for w in workers},
            "queue": {"store": queue or {"type": "MemoryStore", "collection_name": "jobs"}},
            "jobstore": jobstore or {"docs_store": {"type": "MemoryStore", "collection_name": "outputs"},
                                     "additional_stores": {"data": {"type": "MemoryStore", "collection_name": "blobs"}}},
            "runner": {"delay_checkout": 1, "delay_check_run_status": 1, "delay_advance_status": 1,
                       "delay_refresh_limited": 5, "delay_update_batch": 5, "max_step_attempts": 2,
                       "delta_retry": [1]},
            "log_level": "warn",
            **({"exec_config": exec_config} if exec_config else {}),
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(project))
        return name

    yield write
    get_settings.cache_clear()


def _jobs(project: str) -> list[dict]:
    """name, state, worker, error, index of every job in the project's queue database."""
    from jobflow_remote import JobController

    jc = JobController.from_project_name(project)
    return [{"name": j.name, "state": j.state.value, "worker": j.worker, "error": j.error, "index": j.index,
             "uuid": j.uuid} for j in jc.get_jobs_info()]

# ----------------------------------------------------------------------------- (a) the deploy project file


def test_deploy_project_file_validates_with_three_category_workers(tmp_path, monkeypatch):
    import jobflow_remote
    from jobflow import JobStore
    from jobflow_remote.config.base import Project, RemoteWorker
    from jobflow_remote.remote.queue import QueueManager
    from maggma.stores import MongoStore
    from maggma.stores.gridfs import GridFSStore

    raw = yaml.safe_load(PROJECT_FILE.read_text())
    proj = Project.model_validate(raw)  # jobflow-remote's own model, as the file stands
    categories = yaml.safe_load((DEPLOY / "mlipflow.yaml").read_text())["categories"]
    assert proj.name == yaml.safe_load((DEPLOY / "mlipflow.yaml").read_text())["jobflow_remote_project"]
    assert set(proj.workers) == set(categories.values()) == {"cpu", "gpu", "light"}
    for need, name in categories.items():
        w = proj.workers[name]
        assert isinstance(w, RemoteWorker) and w.scheduler_type == "slurm" and w.work_dir.is_absolute()
        script = QueueManager(w.get_scheduler_io(), host=None).get_submission_script(
            ["jf -fe execution run /x"], options=dict(w.resources), pre_run=w.pre_run, work_dir="/x")
        assert ("#SBATCH --gres=gpu:1" in script) == (need == "gpu"), script
        assert f"#SBATCH --partition={ {'cpu': 'cpu', 'gpu': 'gpu', 'light': 'short'}[need]}" in script
        assert "MLIPFLOW_CONFIG" in script and "jf -fe execution run /x" in script
    assert {"vasp", "lammps_kokkos", "pacemaker", "deepmd"} <= set(proj.exec_config)
    assert "ATOMATE2_CONFIG_FILE" in proj.exec_config["vasp"].export
    assert "-k on g 1 -sf kk" in proj.exec_config["lammps_kokkos"].export["MLIPFLOW_EXECUTABLES__LAMMPS_KOKKOS_FLAGS"]
    assert type(proj.get_queue_store()) is MongoStore
    js = proj.get_jobstore()
    assert type(js.docs_store) is MongoStore and type(js.additional_stores["data"]) is GridFSStore
    # the same database and collections as deploy/jobflow.yaml (what `mlipflow query` reads)
    ref = JobStore.from_dict_spec(yaml.safe_load((DEPLOY / "jobflow.yaml").read_text())["JOB_STORE"])
    for mine, theirs in [(js.docs_store, ref.docs_store), (js.additional_stores["data"], ref.additional_stores["data"])]:
        assert (mine.database, mine.collection_name) == (theirs.database, theirs.collection_name)
    # no secret in the file: placeholders only, rendered by envsubst
    assert "${MLIPFLOW_MONGO_PASSWORD}" in raw["queue"]["store"]["uri"]

    # and through jobflow-remote's loading path (ConfigManager), after rendering the placeholders
    folder = tmp_path / "jfremote"
    folder.mkdir()
    rendered = string.Template(PROJECT_FILE.read_text()).safe_substitute(USER="alice", MLIPFLOW_MONGO_PASSWORD="pw")
    (folder / "mlipflow.yaml").write_text(rendered)
    monkeypatch.setattr(jobflow_remote.SETTINGS, "projects_folder", str(folder))
    cm = jobflow_remote.ConfigManager()
    loaded = cm.get_project("mlipflow")
    assert set(loaded.workers) == {"cpu", "gpu", "light"} and loaded.workers["gpu"].user == "alice"
    assert str(loaded.workers["cpu"].work_dir) == "/scratch/alice/mlipflow/jfremote/cpu"


# ----------------------------------------------------------------------------- (b) a real run


@pytest.mark.slow
def test_eos_flow_and_a_label_job_run_through_the_runner(jfr, tmp_path, monkeypatch):
    """EOS flow (dynamic: each step replaces itself) + one EMT label job (a `cpu` job) in one
    submission; the Runner runs every job on its category's worker and the outputs reach the store.
    With secrets in the settings, no file of the projects folder, the job directories or the queue
    holds one."""
    from ase.build import bulk
    from jobflow import Flow, JobStore
    from jobflow.managers.local import run_locally
    from jobflow_remote.jobs.runner import Runner
    from maggma.stores import MemoryStore
    from pymatgen.io.ase import AseAtomsAdaptor

    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.makers.labeling import LabelMaker
    from mlipflow.remote import submit_remote
    from mlipflow.workers import assign_needs

    secrets = {"MLIPFLOW_DATABASE__PASSWORD": "pw-jfr-51d0", "MLIPFLOW_MP_API_KEY": "mpkey-jfr-0c11"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    from mlipflow.settings import get_settings

    get_settings.cache_clear()
    project = jfr()
    eos = build_flow(load_campaign(EOS))
    label = LabelMaker(labeler="emt", mode="static").make([AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6))])
    label.name = "label_cu"
    assign_needs(label)  # settings.categories (MLIPFLOW_CATEGORIES) -> cpu_node
    flow = Flow([eos, label], name="jfr-test")
    t0 = time.time()
    ids = submit_remote(flow, project=project)
    t_submit = time.time() - t0
    assert len(ids) == 3  # eos_step_0, summarize, label_cu
    submitted = {j["name"]: j["worker"] for j in _jobs(project)}
    assert submitted == {"eos_step_0": "login", "summarize": "login", "label_cu": "cpu_node"}

    Runner(project_name=project).run_all_jobs(max_seconds=300)
    t_run = time.time() - t0 - t_submit
    jobs = _jobs(project)
    assert jobs and all(j["state"] == "COMPLETED" for j in jobs), [
        (j["name"], j["state"], (j.get("error") or "")[-500:]) for j in jobs if j["state"] != "COMPLETED"]
    steps = [j for j in jobs if j["name"].startswith("eos_step")]
    assert len(steps) > 5  # the replacements created at run time ran too ...
    assert {j["worker"] for j in steps} == {"login"}  # ... on the worker of their kind of node
    assert {j["name"]: j["worker"] for j in jobs if not j["name"].startswith("eos_step")} == {
        "summarize": "login", "label_cu": "cpu_node"}

    # outputs landed in the job store, and they are those of a local run of the same flow
    from jobflow_remote import ConfigManager

    store = ConfigManager().get_project(project).get_jobstore()
    store.connect()
    camp = store.query_one({"output.type": "campaign"}, load=True)
    iters = list(store.query({"output.type": "eos_iteration"}))
    lab = store.query_one({"name": "label_cu"}, load=True)
    assert camp and camp["output"]["summary"]["converged"] and len(iters) == len(steps)
    assert lab["output"]["n_ok"] == 1 and lab["output"]["labeler"] == "emt"
    local = JobStore(MemoryStore("local_outputs"), additional_stores={"data": MemoryStore("local_blobs")})
    run_locally(build_flow(load_campaign(EOS)), store=local, log=False)
    ref = local.query_one({"output.type": "campaign"}, load=True)["output"]["summary"]
    assert camp["output"]["summary"]["a_best_A"] == pytest.approx(ref["a_best_A"], abs=1e-9)
    assert camp["output"]["summary"]["iterations"] == ref["iterations"] == len(steps)
    print(f"\njobflow-remote: submit {t_submit:.1f} s, runner {t_run:.1f} s for {len(jobs)} jobs")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.startswith("jfremote_in") for p in files)  # the job directories were scanned
    leaks = [f"{p}: {k}" for p in files for k, v in secrets.items() if v.encode() in p.read_bytes()]
    queue = json.dumps(_jobs(project), default=str)
    assert not leaks and not any(v in queue for v in secrets.values()), leaks


def test_al_campaign_jobs_are_submitted_to_their_category_workers(jfr):
    """The tiny AL campaign as submitted: fits and MD on the gpu worker, the rest on light; not run."""
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.remote import submit_remote

    project = jfr()
    ids = submit_remote(build_flow(load_campaign(TINY)), project=project)
    by_name = {j["name"]: j["worker"] for j in _jobs(project)}
    assert len(ids) == len(by_name)
    assert by_name["fit_0"] == by_name["stability_first"] == "gpu_node"
    assert by_name["al_structures"] == by_name["summarize"] == "login"
    assert set(by_name.values()) <= set(CATEGORIES.values())


def test_jobs_that_run_a_code_get_its_exec_config(jfr, monkeypatch):
    """settings.exec_configs (code -> exec_config): fits get the pacemaker environment, LAMMPS MD the
    lammps one, the rest none; jobs created at run time inherit the mapping (job metadata)."""
    from jobflow_remote import JobController

    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.makers.md import MDMaker
    from mlipflow.remote import submit_remote
    from mlipflow.settings import get_settings
    from mlipflow.workers import assign_needs, code_of

    monkeypatch.setenv("MLIPFLOW_EXEC_CONFIGS", json.dumps({"pacemaker": "pace_env", "lammps": "lmp_env"}))
    get_settings.cache_clear()
    project = jfr(exec_config={"pace_env": {"modules": ["cuda/12.4"], "export": {"TF_CPP_MIN_LOG_LEVEL": "2"}},
                               "lmp_env": {"export": {"MLIPFLOW_EXECUTABLES__LAMMPS_KOKKOS": "true"}}})
    flow = build_flow(load_campaign(TINY))
    submit_remote(flow, project=project)
    docs = {d.job.name: d.exec_config for d in JobController.from_project_name(project).get_jobs_doc()}
    assert docs["fit_0"] == "pace_env"
    assert docs["al_structures"] is None and docs["stability_first"] is None  # ASE engine: no external code
    assert {j.metadata["exec_configs"]["pacemaker"] for j in flow} == {"pace_env"}  # for jobs made at run time
    lmp = assign_needs(MDMaker(engine="lammps").make({}, {}))
    assert code_of(lmp) == "lammps" and lmp.config.manager_config["exec_config"] == "lmp_env"


# ----------------------------------------------------------------------------- (c) bad input


def test_exec_config_the_project_lacks(jfr, monkeypatch):
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.errors import UserError
    from mlipflow.remote import submit_remote
    from mlipflow.settings import get_settings

    monkeypatch.setenv("MLIPFLOW_EXEC_CONFIGS", json.dumps({"pacemaker": "pacemaker"}))
    get_settings.cache_clear()
    project = jfr(exec_config={"vasp": {"modules": ["vasp/6.4"]}})
    with pytest.raises(UserError) as err:
        submit_remote(build_flow(load_campaign(TINY)), project=project)
    assert "pacemaker (fit_0" in str(err.value) and "its exec_config: vasp" in str(err.value)
    assert "exec_config:" in err.value.fix


def test_jobflow_remote_not_installed(monkeypatch):
    from mlipflow.errors import UserError
    from mlipflow.remote import submit_remote

    monkeypatch.setitem(sys.modules, "jobflow_remote", None)
    with pytest.raises(UserError, match=r"mlipflow\[remote\]"):
        submit_remote([], project="x")


def test_unknown_project(jfr):
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.errors import UserError
    from mlipflow.remote import submit_remote

    jfr()
    with pytest.raises(UserError) as err:
        submit_remote(build_flow(load_campaign(EOS)), project="nowhere")
    msg = str(err.value)
    assert "'nowhere' not found" in msg and os.environ["JFREMOTE_PROJECTS_FOLDER"] in msg
    assert "mlipflow-test" in msg  # the projects that do exist
    assert "deploy/jobflow_remote_project.yaml" in err.value.fix and "JFREMOTE_PROJECTS_FOLDER" in err.value.fix
    assert len(str(err.value).splitlines()) == 2


def test_job_worker_not_in_project(jfr):
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.errors import UserError
    from mlipflow.remote import submit_remote
    from mlipflow.workers import assign_needs

    project = jfr(workers=("cpu_node", "gpu_node", "login"))
    flow = assign_needs(build_flow(load_campaign(EOS)), {"light": "h100"})
    with pytest.raises(UserError) as err:
        submit_remote(flow, project=project)
    assert "'h100'" in err.value.problem and "eos_step_0" in err.value.problem
    assert "its workers: cpu_node, gpu_node, login" in err.value.problem
    assert _jobs(project) == []  # nothing was submitted
    # the default worker (settings.categories['light']) is checked too
    jfr(name="other", workers=("a", "b"))
    with pytest.raises(UserError, match="login"):
        submit_remote(build_flow(load_campaign(EOS)), project="other")


def test_unreachable_queue_database_fails_fast(jfr):
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.errors import UserError
    from mlipflow.remote import submit_remote

    project = jfr(queue={"type": "MongoStore", "host": "127.0.0.1", "port": 1, "database": "jfr",
                         "collection_name": "jobs"})
    flow = build_flow(load_campaign(EOS))
    t0 = time.time()
    with pytest.raises(UserError) as err:
        submit_remote(flow, project=project)
    assert time.time() - t0 < 10  # a 3 s server selection, not pymongo's 30 s
    assert "cannot connect to the queue database" in err.value.problem and "127.0.0.1:1" in err.value.problem
    assert "queue.store" in err.value.fix
    # an unreachable output store, with credentials in the URI: reported without them
    project = jfr(name="out", jobstore={
        "docs_store": {"type": "MongoStore", "uri": "mongodb://u:secret@127.0.0.1:1/x", "database": "x",
                       "collection_name": "outputs"},
        "additional_stores": {"data": {"type": "MemoryStore", "collection_name": "blobs"}}})
    t0 = time.time()
    with pytest.raises(UserError) as err:
        submit_remote(flow, project=project)
    assert time.time() - t0 < 10 and "output database" in err.value.problem and "secret" not in str(err.value)


def test_unrendered_placeholders(jfr):
    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.errors import UserError
    from mlipflow.remote import submit_remote

    project = jfr(queue={"type": "MongoStore", "uri": "mongodb://u:${MLIPFLOW_MONGO_PASSWORD}@db:27017",
                         "database": "jfr", "collection_name": "jobs"})
    with pytest.raises(UserError, match="MLIPFLOW_MONGO_PASSWORD") as err:
        submit_remote(build_flow(load_campaign(EOS)), project=project)
    assert "envsubst" in err.value.fix



@pytest.mark.slow
def test_al_campaign_runs_through_the_runner(jfr):
    """The tiny AL campaign, submitted unchanged, run to the end by the Runner: every job on its
    category's worker (labels on cpu, fits/MD on gpu, the rest on login), the iterations created at
    run time included; every job's output is in the store once, and the documents are those the
    campaign's jobs make (one potential per fit, one MD run per exploration and stability run).
    (Compared with `mlipflow run` of the same campaign once, 2026-12-07: equal counts by type,
    kind and campaign; not repeated here, as that run would put 5 more minutes on the suite's
    longest worker.) The project's job store is mlipflow's store (as in
    deploy/: one MongoDB), here the embedded one; each job runs in its own process, which reads and
    writes its inputs and outputs through jobflow-remote's per-job JSON files."""
    from jobflow_remote import ConfigManager
    from jobflow_remote.jobs.runner import Runner

    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.remote import submit_remote
    from mlipflow.store import job_store

    project = jfr(jobstore=job_store().as_dict())
    submit_remote(build_flow(load_campaign(TINY)), project=project)
    t0 = time.time()
    Runner(project_name=project).run_all_jobs(max_seconds=1500)
    t_run = time.time() - t0
    jobs = _jobs(project)
    assert jobs and all(j["state"] == "COMPLETED" for j in jobs), [
        (j["name"], j["state"], (j.get("error") or "")[-800:]) for j in jobs if j["state"] != "COMPLETED"]
    worker = {j["name"]: j["worker"] for j in jobs}
    assert {worker[n] for n in worker if n.startswith(("fit_", "explore_", "stability_"))} == {"gpu_node"}
    assert {worker[n] for n in worker if n.startswith(("aimd_", "label_", "test_md_"))} == {"cpu_node"}
    assert {worker[n] for n in worker if n.startswith(("decide_", "iteration_", "select_label_", "summarize"))} == {
        "login"}
    assert {"explore_2_0", "select_label_2", "fit_2", "decide_2", "stability_final"} <= set(worker)  # created at run time

    store = ConfigManager().get_project(project).get_jobstore()
    store.connect()
    docs = list(store.query({}, properties=["uuid", "index", "output.type"]))
    assert sorted((d["uuid"], d["index"]) for d in docs) == sorted((j["uuid"], j["index"]) for j in jobs)
    types = collections.Counter((d.get("output") or {}).get("type") for d in docs if isinstance(d.get("output"), dict))
    n = collections.Counter(name.split("_")[0] for name in worker)
    assert types["potential"] == n["fit"] == 3 and types["md_run"] == n["explore"] + n["stability"]
    assert types["campaign"] == 1
    camp = store.query_one({"output.type": "campaign"}, load=True)["output"]["summary"]
    final = store.query_one({"name": "stability_final"}, load=True)["output"]
    assert final["potential"]["input_hash"] == camp["final_potential"]["input_hash"] != camp["first_potential"]["input_hash"]
    assert camp["fixed_test_set"]["final"] == camp["history"][-1]["fixed_test"]  # one potential, two jobs
    print(f"\njobflow-remote: the tiny AL campaign, {len(jobs)} jobs, runner {t_run:.0f} s")
