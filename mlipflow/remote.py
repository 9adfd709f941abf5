"""Submit mlipflow flows to jobflow-remote (for sites whose compute nodes cannot reach MongoDB).

The flow is the same one ``mlipflow run`` and FireWorks run: :func:`mlipflow.workers.assign_needs`
already wrote each job's worker into ``job.config.manager_config["worker"]`` (from
``settings.categories``), and jobflow-remote honours it per job. :func:`submit_remote` checks
what jobflow-remote would only find out later (a job naming a worker the project lacks, a queue
database that cannot be reached), initialises an empty queue database, and calls
``jobflow_remote.submit_flow``. The runner (``jf runner start``) then executes the jobs.

Every problem is a :class:`mlipflow.errors.UserError` (one problem line, one fix line).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any

from mlipflow.errors import MissingDependencyError, UserError

log = logging.getLogger(__name__)

#: What to install for this launcher.
INSTALL = "pip install 'mlipflow[remote]'"
#: The template of a project file.
TEMPLATE = "deploy/jobflow_remote_project.yaml"
#: Seconds to find the queue/output database before giving up (pymongo's default is 30).
CONNECT_TIMEOUT_S = 3.0


def _jobflow_remote():
    try:
        import jobflow_remote
    except ImportError:
        raise MissingDependencyError("jobflow-remote", INSTALL) from None
    return jobflow_remote


def projects_folder() -> str:
    """The folder jobflow-remote reads projects from (``$JFREMOTE_PROJECTS_FOLDER``, else ~/.jfremote)."""
    return str(_jobflow_remote().SETTINGS.projects_folder)


def load_project(project: str | None = None, settings=None):
    """The jobflow-remote ``Project`` named ``project`` (else ``settings.jobflow_remote_project``,
    else jobflow-remote's current project)."""
    from mlipflow.settings import get_settings

    jfr = _jobflow_remote()
    from jobflow_remote.config.base import ConfigError

    settings = settings or get_settings()
    name = project or settings.jobflow_remote_project
    folder = projects_folder()
    try:
        cm = jfr.ConfigManager()
        name = cm.select_project_name(name)
        return cm.get_project(name)
    except ConfigError as exc:
        names, broken = [], []
        try:
            names, broken = jfr.ConfigManager().project_names_from_files(suppress_warnings=True)
        except Exception:  # noqa: BLE001 - only used to make the message more precise
            pass
        what = f"jobflow-remote project {name!r} not found" if name else "no jobflow-remote project selected"
        detail = f"projects there: {', '.join(sorted(names)) or 'none'}"
        if broken:
            detail += f"; files that do not parse as a project: {', '.join(sorted(broken))} (see `jf project check --errors`)"
        if name in names:
            what = f"jobflow-remote project {name!r} in {folder} does not parse ({type(exc).__name__})"
        raise UserError(
            f"{what} in {folder} ({detail})",
            f"write a project file there from the template: envsubst < {TEMPLATE} > {folder}/mlipflow.yaml "
            "(jobflow-remote reads $JFREMOTE_PROJECTS_FOLDER, else ~/.jfremote), or name an existing project "
            "(settings.jobflow_remote_project)",
        ) from None


def default_worker(proj, settings=None) -> str:
    """The worker of jobs that name none: ``settings.categories['light']``, else the project's first."""
    from mlipflow.settings import get_settings

    settings = settings or get_settings()
    light = settings.categories.get("light")
    if light:
        return light
    if not proj.workers:
        raise UserError(f"jobflow-remote project {proj.name!r} defines no workers",
                        f"add workers to the project file (template: {TEMPLATE})")
    return next(iter(proj.workers))


def jobs_by_worker(flow, default: str) -> Counter:
    """Number of jobs per worker as jobflow-remote will assign them (``manager_config['worker']``)."""
    from mlipflow.workers import iter_jobs

    return Counter((j.config.manager_config or {}).get("worker") or default for j in iter_jobs(flow))


def check_workers(flow, proj, default: str) -> Counter:
    """Every job's worker (and the default) must be a worker of the project; returns the counts."""
    from mlipflow.workers import iter_jobs

    known = list(proj.workers)
    stray: dict[str, list[str]] = {}
    for j in iter_jobs(flow):
        w = (j.config.manager_config or {}).get("worker") or default
        if w not in proj.workers:
            stray.setdefault(w, []).append(j.name)
    if default not in proj.workers and default not in stray:
        stray[default] = ["(jobs created at run time without a worker)"]
    if stray:
        listed = "; ".join(f"{w!r} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                           for w, names in sorted(stray.items()))
        raise UserError(
            f"jobs name worker(s) that jobflow-remote project {proj.name!r} does not define: {listed}; "
            f"its workers: {', '.join(known) or 'none'}",
            "add those workers to the project file, or make settings.categories (or the campaign's "
            "categories) name the project's workers",
        )
    return jobs_by_worker(flow, default)


def check_exec_configs(flow, proj, settings) -> None:
    """Every exec_config the flow's jobs name (and that jobs created at run time will name:
    ``settings.exec_configs``) must be defined by the project."""
    from mlipflow.workers import iter_jobs

    wanted: dict[str, list[str]] = {}
    for j in iter_jobs(flow):
        name = (j.config.manager_config or {}).get("exec_config")
        if name:
            wanted.setdefault(name, []).append(j.name)
    for code, name in (settings.exec_configs or {}).items():
        wanted.setdefault(name, []).append(f"(settings.exec_configs.{code})")
    missing = sorted(n for n in wanted if n not in (proj.exec_config or {}))
    if missing:
        listed = "; ".join(f"{n} ({', '.join(wanted[n][:3])})" for n in missing)
        raise UserError(f"jobs use exec_config(s) that jobflow-remote project {proj.name!r} does not define: {listed}; "
                        f"its exec_config: {', '.join(proj.exec_config or {}) or 'none'}",
                        f"add them under exec_config: in the project file (template: {TEMPLATE}), or remove them "
                        "from settings.exec_configs")


def _placeholders(proj) -> list[str]:
    text = json.dumps({"queue": proj.queue.model_dump(mode="json"), "jobstore": proj.jobstore,
                       "workers": {k: w.model_dump(mode="json") for k, w in proj.workers.items()}})
    return sorted(set(re.findall(r"\$\{(\w+)\}", text)))


def _describe_store(store) -> str:
    from mlipflow.settings import redact_uri

    uri = getattr(store, "uri", None)
    if uri:
        return redact_uri(str(uri))
    host = getattr(store, "host", None)
    return f"{host}:{getattr(store, 'port', '')}" if host else type(store).__name__


def _ping(store, what: str, proj) -> None:
    """Connect ``store`` (a MongoDB-backed maggma store) within CONNECT_TIMEOUT_S and ping it."""
    from maggma.stores import MemoryStore

    if isinstance(store, MemoryStore) or not hasattr(store, "mongoclient_kwargs"):
        return  # in-memory (tests) or not a MongoDB store: nothing to reach
    ms = int(CONNECT_TIMEOUT_S * 1000)
    store.mongoclient_kwargs = {**(store.mongoclient_kwargs or {}), "serverSelectionTimeoutMS": ms,
                                "connectTimeoutMS": ms}
    try:
        store.connect()
        coll = getattr(store, "_files_collection", None)
        if coll is None:
            coll = store._collection
        coll.database.command("ping")
    except Exception as exc:  # noqa: BLE001 - pymongo raises several kinds; all mean: cannot use the database
        raise UserError(
            f"cannot connect to the {what} database of jobflow-remote project {proj.name!r} at "
            f"{_describe_store(store)} ({type(exc).__name__})",
            f"check the host/uri and credentials of `{'queue.store' if what == 'queue' else 'jobstore'}` in "
            f"{projects_folder()} and that MongoDB is reachable from this machine",
        ) from None
    finally:
        try:
            store.close()
        except Exception:  # noqa: BLE001
            pass


def check_databases(proj) -> None:
    """The queue database and the output store answer within a few seconds (else UserError)."""
    _ping(proj.get_queue_store(), "queue", proj)
    js = proj.get_jobstore()
    if js is not None:
        _ping(js.docs_store, "output", proj)
        for store in js.additional_stores.values():
            _ping(store, "output", proj)


def ensure_initialized(proj) -> bool:
    """Initialise an empty queue database (what ``jf admin reset`` does); True if it did."""
    jc = proj.get_job_controller()
    try:
        if jc.auxiliary.find_one({"next_id": {"$exists": True}}) is not None:
            return False
        if jc.jobs.count_documents({}) or jc.flows.count_documents({}):
            raise UserError(f"the queue database of jobflow-remote project {proj.name!r} holds jobs but is not "
                            "initialised (no next_id)", "run `jf admin upgrade`, or `jf admin reset` to empty it")
        jc.reset()
        log.info("initialised the empty queue database of jobflow-remote project %s", proj.name)
        return True
    finally:
        jc.close()


def submit_remote(flow, project: str | None = None, settings=None) -> list[str]:
    """Submit a jobflow ``Flow`` (or Job, or list of Jobs) to a jobflow-remote project.

    ``project``: a project name in jobflow-remote's projects folder, else
    ``settings.jobflow_remote_project``, else jobflow-remote's current project. Jobs keep the
    worker :func:`mlipflow.workers.assign_needs` gave them; jobs without one go to
    ``settings.categories['light']``, else to the project's first worker. Returns the db ids of
    the submitted jobs. Raises :class:`~mlipflow.errors.UserError` (jobflow-remote not installed:
    :class:`~mlipflow.errors.MissingDependencyError`; project not found; a job's worker not in the
    project; queue or output database unreachable within a few seconds; the project rejecting
    the flow).
    """
    from mlipflow.settings import get_settings

    settings = settings or get_settings()
    jfr = _jobflow_remote()
    from jobflow_remote.config.base import ConfigError

    proj = load_project(project, settings)
    unset = _placeholders(proj)
    if unset:
        raise UserError(f"jobflow-remote project {proj.name!r} still contains ${{...}} placeholders: {', '.join(unset)}",
                        f"render it with envsubst (see {TEMPLATE}): jobflow-remote does not expand environment variables")
    worker = default_worker(proj, settings)
    counts = check_workers(flow, proj, worker)
    check_exec_configs(flow, proj, settings)
    check_databases(proj)
    ensure_initialized(proj)
    try:
        ids = jfr.submit_flow(flow, worker=worker, project=proj.name)
    except ConfigError as exc:
        raise UserError(f"jobflow-remote project {proj.name!r} rejected the flow: {exc}",
                        f"compare the project file with {TEMPLATE} (jobstore with a `data` additional store)") from None
    except ValueError as exc:
        if "initialised" not in str(exc):
            raise
        raise UserError(f"the queue database of jobflow-remote project {proj.name!r} is not initialised",
                        "run `jf admin reset` once (it empties the queue database)") from None
    log.info("submitted %d jobs to jobflow-remote project %s (%s)", len(ids), proj.name,
             ", ".join(f"{w} {n}" for w, n in sorted(counts.items())))
    return list(ids)


def remote_summary(flow, project: str | None = None, settings=None) -> dict[str, Any]:
    """Project name, default worker and jobs per worker, as :func:`submit_remote` would submit them."""
    proj = load_project(project, settings)
    worker = default_worker(proj, settings)
    return {"project": proj.name, "default_worker": worker, "jobs_by_worker": dict(jobs_by_worker(flow, worker))}
