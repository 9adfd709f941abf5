"""Which kind of node runs which job: ``cpu``, ``gpu`` or ``light``.

Every mlipflow maker declares what its job needs (class attribute ``need``): reference calculations
(VASP, CHGNet labels) need ``cpu`` nodes, fits, DeePMD training and MD need ``gpu`` nodes, gathering,
selection bookkeeping and analysis are ``light``. :func:`assign_needs` writes that into each job's
``manager_config``: ``_category`` for FireWorks (an FWorker with that category pulls it) and
``worker`` for jobflow-remote, both taken from ``settings.categories`` (need -> name). With no
categories configured (the laptop profile) jobs carry no category and one worker runs everything.

Jobs that create jobs at run time (iterations, fan-outs) call :func:`assign_needs` on what they
create and do not pass their own configuration on (``pass_manager_config=False``), so a ``light``
job's children keep their own kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: The kinds of node a job can need, with what runs there.
NEEDS = {
    "cpu": "reference calculations (VASP, CHGNet/embedded labels)",
    "gpu": "fits, DeePMD training, MD (explorations, stability, production)",
    "light": "gathering, selection, bookkeeping, analysis",
}

#: Makers of other packages whose jobs mlipflow creates: module prefix -> need.
FOREIGN_NEEDS = {"atomate2.vasp": "cpu", "atomate2.forcefields": "gpu", "atomate2.lammps": "gpu"}

#: The external codes a job can run, each with its own environment on a cluster (modules, variables):
#: ``settings.exec_configs`` maps a code to the jobflow-remote ``exec_config`` of that name.
CODES = {
    "vasp": "VASP reference calculations (atomate2's makers)",
    "pacemaker": "ACE fits",
    "deepmd": "DeePMD-kit training and fine-tuning",
    "lammps": "LAMMPS MD (explorations, stability, production)",
}

#: Makers of other packages: module prefix -> code.
FOREIGN_CODES = {"atomate2.vasp": "vasp", "atomate2.lammps": "lammps"}


def iter_jobs(obj: Any) -> Iterator[Any]:
    """Every Job in a Job, Flow or list of them."""
    from jobflow import Flow, Job

    if isinstance(obj, Job):
        yield obj
    elif isinstance(obj, Flow):
        for j in obj.jobs:
            yield from iter_jobs(j)
    elif isinstance(obj, (list, tuple)):
        for j in obj:
            yield from iter_jobs(j)


def _declared(job, attr: str, foreign: dict[str, str]) -> str | None:
    """What a job's maker (or function) declares as ``attr``, else what :data:`FOREIGN_NEEDS` /
    :data:`FOREIGN_CODES` say for the package the maker comes from."""
    func = job.function
    maker = getattr(func, "__self__", None)
    value = getattr(maker, attr, None) or getattr(func, attr, None)
    if value:
        return value
    module = type(maker).__module__ if maker is not None else getattr(func, "__module__", "")
    return next((v for prefix, v in foreign.items() if module.startswith(prefix)), None)


def need_of(job) -> str:
    """The kind of node a job needs: its maker's ``need`` (or a known foreign maker's), else light."""
    return _declared(job, "need", FOREIGN_NEEDS) or "light"


def code_of(job) -> str | None:
    """The external code a job runs (a key of :data:`CODES`): its maker's ``code``, else None."""
    return _declared(job, "code", FOREIGN_CODES)


def current_mapping(key: str) -> dict[str, str]:
    """``categories`` or ``exec_configs`` of the running job (what its campaign was submitted with),
    else the settings' (the field of that name)."""
    from jobflow import CURRENT_JOB

    meta = getattr(getattr(CURRENT_JOB, "job", None), "metadata", None) or {}
    if key in meta:
        return dict(meta[key] or {})
    from mlipflow.settings import get_settings

    return dict(getattr(get_settings(), key))


def assign_needs(obj, categories: dict[str, str] | None = None, exec_configs: dict[str, str] | None = None):
    """Set each job's kind of node (see module docstring) and, for a job that runs an external code
    named in ``exec_configs`` (code -> jobflow-remote exec_config), its ``exec_config``; returns ``obj``.

    ``categories`` (need -> worker) and ``exec_configs`` default to those of the running job, so
    jobs created at run time on a worker get what the campaign was submitted with."""
    if categories is None:
        categories = current_mapping("categories")
    if exec_configs is None:
        exec_configs = current_mapping("exec_configs")
    for job in iter_jobs(obj):
        need = need_of(job)
        job.metadata = {**(job.metadata or {}), "need": need, "categories": dict(categories),
                        "exec_configs": dict(exec_configs)}
        config = dict(job.config.manager_config or {})
        name = categories.get(need)
        if name:
            config.update({"_category": name, "worker": name})
        code = code_of(job)
        if code and exec_configs.get(code):
            config["exec_config"] = exec_configs[code]
        job.config.manager_config = config
        job.config.pass_manager_config = False
        job.config.expose_store = True  # current_store() is the launcher's job store (jobflow-remote's too)
    return obj


def replace_with(jobs: list, output: Any = None, name: str = "Flow"):
    """``Response(replace=...)`` for a job that fans out: the new jobs keep their own kinds of node.

    jobflow holds a replacing flow's output in an extra ``store_inputs`` job with the replaced
    job's uuid; it would carry no category (its parent's configuration is not passed on), so a
    category-filtered worker would never run it. The holder is made here and assigned ``light``.
    """
    from jobflow import CURRENT_JOB, Flow, Response
    from jobflow.core.job import store_inputs

    current = getattr(CURRENT_JOB, "job", None)
    jobs = list(jobs)
    if output is not None and current is not None:
        holder = store_inputs(output)
        holder.set_uuid(current.uuid)
        holder.index = current.index + 1
        holder.metadata = dict(current.metadata or {})
        holder.output_schema = current.output_schema
        holder._kwargs = current._kwargs
        holder.name = f"{current.name} output"
        jobs.append(holder)
        output = None
    return Response(replace=assign_needs(Flow(jobs, output=output, name=name)))


def check_categories(categories: dict[str, str], configured: dict[str, str]) -> None:
    """A campaign's categories must name configured workers (``settings.categories``)."""
    from mlipflow.errors import UserError

    unknown = sorted(set(categories) - set(NEEDS))
    if unknown:
        raise UserError(f"unknown kind(s) of job {unknown} in the campaign's categories",
                        f"use {', '.join(NEEDS)} as keys")
    workers = sorted(set(configured.values()))
    stray = sorted({c for c in categories.values() if c not in workers})
    if stray:
        raise UserError(f"the campaign's categories {stray} name no configured worker "
                        f"(configured: {', '.join(workers) or 'none'})",
                        "use one of the configured categories, or add the worker to settings.categories "
                        "and deploy/ (one FWorker per kind of node)")


def needs(need: str):
    """Decorator for ``@job`` functions: declare the kind of node (``@needs("light") @job def f...``)."""
    if need not in NEEDS:
        raise ValueError(f"unknown need {need!r}: use one of {', '.join(NEEDS)}")

    def deco(f):
        target = getattr(f, "original", f)
        target.need = need
        return f

    return deco
