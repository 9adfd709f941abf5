"""Campaign files: YAML naming a registered flow and its parameters.

```yaml
name: nafepo4-mini          # campaign name (documents are tagged with it)
flow: nafepo4_al            # a key of FLOWS (or "module.path:function")
parameters: {...}           # keyword arguments of the flow builder
```
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from mlipflow.errors import UserError

#: Registered flow builders: name -> "module:function". Each returns a jobflow Flow/Job
#: and accepts ``campaign=<name>`` plus the campaign's parameters.
FLOWS: dict[str, str] = {
    "example_eos": "mlipflow.flows.example:eos_bisection_flow",
    "nafepo4_al": "mlipflow.flows.active_learning:active_learning_flow",
    "nafepo4_glass": "mlipflow.flows.production:nafepo4_glass_flow",
    "lfp_md": "mlipflow.flows.lfp_md:lfp_md_flow",
    "lfp_dpa": "mlipflow.flows.lfp_dpa:lfp_dpa_flow",
}


class CampaignFile(BaseModel):
    """A campaign file."""

    model_config = {"extra": "forbid"}

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$", description="Campaign name.")
    flow: str = Field(..., description="Registered flow name or 'module:function'.")
    description: str = Field("", description="Free text.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Flow builder arguments.")
    categories: dict[str, str] | None = Field(None, description="Kind of job ('cpu', 'gpu', 'light') -> worker category for this campaign (default: settings.categories).")


def read_yaml_mapping(path: str | Path, what: str, missing_fix: str, keys: str, keys_fix: str) -> dict:
    """A YAML file holding a mapping, or a UserError: missing file, bad YAML, not a mapping
    (``what``: e.g. "campaign file"; ``keys``: what the mapping holds, e.g. "with keys name, flow")."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} does not exist", missing_fix)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}", "fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must be a mapping {keys}", keys_fix)
    return data


def load_campaign(path: str | Path) -> CampaignFile:
    path = Path(path)
    data = read_yaml_mapping(path, "campaign file", "give the path of a campaign YAML (see examples/)",
                             "with keys name, flow, parameters", "see examples/*.yaml")
    try:
        return CampaignFile(**data)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UserError(f"{path}: {msgs}", "see examples/*.yaml for the expected keys") from None


def resolve_flow(name: str):
    target = FLOWS.get(name, name)
    if ":" not in target:
        raise UserError(
            f"unknown flow {name!r}", f"use one of {sorted(FLOWS)} or 'module.path:function'"
        )
    mod_name, func = target.split(":", 1)
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"flow {name!r}: cannot import {mod_name} ({exc})", "check the flow name") from None
    if not hasattr(mod, func):
        raise UserError(f"flow {name!r}: {mod_name} has no {func}", "check the flow name")
    return getattr(mod, func)


def build_flow(campaign: CampaignFile, workdir: Path | None = None):
    """The campaign's flow, each job with its kind of node (``campaign.categories`` or the settings')."""
    from mlipflow.settings import get_settings
    from mlipflow.workers import assign_needs, check_categories

    configured = get_settings().categories
    categories = configured
    if campaign.categories is not None:
        check_categories(campaign.categories, configured)
        categories = campaign.categories
    builder = resolve_flow(campaign.flow)
    params = dict(campaign.parameters)
    try:
        return assign_needs(builder(campaign=campaign.name, **params), categories)
    except TypeError as exc:
        raise UserError(
            f"flow {campaign.flow!r} rejected the parameters: {exc}",
            "check the parameter names in the campaign file against the flow's documentation",
        ) from None


def run_in_store(flow, subdir: str, settings=None) -> dict:
    """Run a flow (or one job) with jobflow into the configured store, in job directories under
    ``<scratch_dir>/<subdir>`` (or ``subdir`` itself when absolute); the first failure raises (what the one-off commands run: ``potential
    fit``/``select``, ``md run``). Returns jobflow's responses."""
    from jobflow import Flow
    from jobflow.managers.local import run_locally

    from mlipflow.settings import apply_thread_settings, get_settings
    from mlipflow.store import job_store

    settings = settings or get_settings()
    apply_thread_settings(settings)
    root = Path(settings.scratch_dir).expanduser() / Path(subdir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return run_locally(flow if isinstance(flow, Flow) else Flow([flow]), store=job_store(settings),
                       create_folders=True, root_dir=root, log=False, raise_immediately=True)


def campaign_hash(campaign: CampaignFile) -> str:
    """What identifies a campaign run: its name, flow, parameters and categories."""
    from mlipflow.schemas.base import content_hash

    return content_hash("campaign-file", campaign.name, campaign.flow, campaign.parameters, campaign.categories)


def _runs_store(settings=None):
    from mlipflow.store import collection

    store = collection("campaign_runs", settings, key="campaign_hash")
    store.connect()
    return store


def completed_run(campaign: CampaignFile, settings=None) -> dict | None:
    """The record of a completed local run of this very campaign file, or None."""
    store = _runs_store(settings)
    try:
        return store.query_one({"campaign_hash": campaign_hash(campaign)})
    finally:
        store.close()


def record_completed(campaign: CampaignFile, n_jobs: int, wall_time_s: float, settings=None) -> None:
    """Note that this campaign file ran to completion (``mlipflow run`` then reports it as complete)."""
    from datetime import datetime, timezone

    store = _runs_store(settings)
    try:
        store.update([{"campaign_hash": campaign_hash(campaign), "name": campaign.name, "flow": campaign.flow,
                       "n_jobs": int(n_jobs), "wall_time_s": float(wall_time_s),
                       "completed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}])
    finally:
        store.close()


# ----------------------------------------------------------------------------- run state (`mlipflow status`)


def _status_store(settings=None):
    from mlipflow.store import collection

    store = collection("campaign_status", settings, key="campaign_hash")
    store.connect()
    return store


def record_status(campaign: CampaignFile, state: str, settings=None, **fields) -> None:
    """Where a local run of this campaign file stands: ``running`` (with pid and host), ``completed``
    or ``failed`` (with the failed jobs and their last error lines); read by `mlipflow status`."""
    from datetime import datetime, timezone

    store = _status_store(settings)
    try:
        store.update([{"campaign_hash": campaign_hash(campaign), "name": campaign.name, "flow": campaign.flow,
                       "state": state, "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       **fields}])
    finally:
        store.close()


def run_states(name: str | None = None, settings=None) -> list[dict]:
    """The recorded run states (of campaign ``name``, or all), newest first."""
    store = _status_store(settings)
    try:
        docs = list(store.query({"name": name} if name else {}))
    finally:
        store.close()
    return sorted(docs, key=lambda d: d.get("updated_at", ""), reverse=True)


class FailureLog(logging.Handler):
    """Collects the jobs jobflow's ``run_locally`` reports as failed (name and last error lines)
    while installed (``with FailureLog() as log``) as a handler on its logger."""

    LOGGER = "jobflow.managers.local"

    def __init__(self):
        super().__init__(level=logging.INFO)
        self.failures: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if " failed with exception:" in msg:
            job, _, tb = msg.partition(" failed with exception:")
            lines = [ln for ln in tb.strip().splitlines() if ln.strip()]
            self.failures.append({"job": job.strip(), "error": "\n".join(lines[-3:])})

    def __enter__(self):
        logging.getLogger(self.LOGGER).addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger(self.LOGGER).removeHandler(self)
        return False
