"""Top-level commands: doctor, config, run, submit, worker, query, show."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

console = Console()


def _json_default(o):
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


def doctor(deep: bool = typer.Option(False, "--deep", help="Also import every module (each in its own "
                                      "interpreter, tens of seconds) and read the pretrained base's branches.")) -> None:
    """Report every engine, labeler and the store: found or missing, version, how to install."""
    from mlipflow.doctor import run_checks
    from mlipflow.settings import get_settings

    console.print("mlipflow doctor: " + ("importing every module (--deep) ..." if deep else
                                         "finding the components (without importing them; --deep imports them) ..."))
    checks = run_checks(get_settings(), deep=deep)
    table = Table(title="mlipflow doctor")
    for col in ("component", "status", "version", "detail / fix"):
        table.add_column(col)
    for c in checks:
        status = "[green]ok[/]" if c.ok else "[red]missing[/]"
        detail = c.detail
        if c.fix:
            detail = f"{detail}\n[yellow]{c.fix}[/]" if detail else f"[yellow]{c.fix}[/]"
        table.add_row(c.name, status, c.version, detail)
    console.print(table)
    bad = [c.name for c in checks if not c.ok and c.required]
    if bad:
        console.print(f"[red]{len(bad)} missing:[/] {', '.join(bad)}")
        raise typer.Exit(1)
    console.print("[green]all components available[/]")


def config() -> None:
    """Print the effective settings (secrets removed) and where they came from."""
    from mlipflow.settings import Settings, get_settings, public_settings

    s = get_settings()
    src = Settings.config_file()
    console.print(f"config file: {src} ({'found' if src.is_file() else 'not present'})")
    console.print_json(json.dumps(public_settings(s), default=_json_default))


def run(
    campaign_file: Path = typer.Argument(..., help="Campaign YAML (see examples/)."),
    workdir: Optional[Path] = typer.Option(None, help="Job directories (default: <scratch_dir>/<campaign>)."),
    restart: bool = typer.Option(False, "--restart", help="Run a campaign that has completed again (finished "
                                 "computations with the same inputs still come from the cache)."),
) -> None:
    """Run a campaign locally with jobflow into the configured store (resumable: rerun continues;
    a campaign that completed with the same file is not run again without --restart)."""
    import os
    import socket
    from datetime import datetime, timezone

    from jobflow.managers.local import run_locally

    from mlipflow.campaign import (
        FailureLog,
        build_flow,
        campaign_hash,
        completed_run,
        load_campaign,
        record_completed,
        record_status,
    )
    from mlipflow.settings import apply_thread_settings, get_settings
    from mlipflow.store import describe, job_store
    from mlipflow.uids import reproducible_uuids

    camp = load_campaign(campaign_file)
    settings = get_settings()
    done = None if restart else completed_run(camp, settings)
    if done is not None:
        console.print(f"campaign {camp.name} is complete (this campaign file, finished {done['completed_at']}, "
                      f"{done['n_jobs']} jobs); nothing added to the store. Run it again with --restart.")
        _print_summary(camp.name, settings)
        return
    with reproducible_uuids(campaign_hash(camp)):  # a rerun replaces the documents a killed run wrote
        flow = build_flow(camp)  # validates every parameter before anything is written
        apply_thread_settings(settings)
        root = (workdir or settings.scratch_dir / camp.name).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        console.print(f"[bold]campaign[/] {camp.name} ({camp.flow}) -> {describe(settings)}")
        console.print(f"job directories: {root}")
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        record_status(camp, "running", settings, started_at=started, pid=os.getpid(), host=socket.gethostname(),
                      job_dir=str(root))
        t0 = time.time()
        with FailureLog() as failures:
            responses = run_locally(flow, store=job_store(settings), create_folders=True, root_dir=root,
                                    log=False, ensure_success=False)
    dt = time.time() - t0
    n_fail = _count_failed(flow, responses)
    from mlipflow.cache import STATS

    record_status(camp, "failed" if n_fail else "completed", settings, started_at=started, wall_time_s=dt,
                  n_jobs_finished=len(responses), n_failed=n_fail, failures=failures.failures,
                  cache=STATS.as_dict(), job_dir=str(root))
    _print_summary(camp.name, settings)
    console.print(f"finished in {dt:.1f} s; {_cache_line()}")
    if n_fail:
        console.print(f"[red]{n_fail} job(s) did not complete[/]; fix the cause and rerun the same command to continue "
                      f"(`mlipflow status {camp.name}` shows the errors)")
        raise typer.Exit(1)
    record_completed(camp, len(responses), dt, settings)


def _cache_line() -> str:
    """What this run took from the cache and what it computed, per kind of entry."""
    from mlipflow.cache import STATS

    def fmt(counts: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing"

    st = STATS.as_dict()
    return f"from the cache: {fmt(st['hits'])}; computed: {fmt(st['computed'])}"


def _count_failed(flow, responses) -> int:
    from jobflow import Flow

    jobs = flow.jobs if isinstance(flow, Flow) else [flow]
    uuids = set()
    for j in jobs:
        uuids.update(getattr(j, "all_uuids", [j.uuid]) if isinstance(j, Flow) else [j.uuid])
    return sum(1 for u in uuids if u not in responses)


def _print_summary(campaign: str, settings) -> None:
    from mlipflow.store import query_outputs

    docs = query_outputs(doc_type="campaign", campaign=campaign, limit=1, settings=settings)
    if not docs:
        return
    summary = docs[0]["output"].get("summary", {})
    if _is_glass_summary(summary):
        _print_glass_summary(campaign, summary)
        return
    if "final_potential" in summary and "validation" in summary:
        _print_lfp_summary(campaign, summary)
        return
    table = Table(title=f"campaign {campaign}: summary")
    table.add_column("quantity")
    table.add_column("value")
    history = summary.pop("history", None)
    for k, v in summary.items():
        table.add_row(str(k), _short(v))
    console.print(table)
    if history:
        console.print(iteration_table(history))


def iteration_table(history: list[dict]) -> Table:
    """The active-learning history (IterationSummary rows) as a table (`run` and `status`)."""
    it = Table(title="iterations (test force RMSE in eV/Å: new potential, and previous one on the same set; "
               "new one on the fixed test set)")
    cols = ["iteration", "n_runs", "n_terminated", "n_candidates", "n_selected", "n_labeled", "n_label_failed",
            "n_label_rejected"]
    for c in ["it", "runs", "stopped", "cand.", "sel.", "labelled", "failed", "rejected", "F new", "F prev", "F fixed"]:
        it.add_column(c)
    for h in history:
        prev = (h.get("previous_test") or {}).get("force_rmse")
        it.add_row(*[str(h.get(c)) for c in cols], _short((h.get("test") or {}).get("force_rmse")), _short(prev),
                   _short((h.get("fixed_test") or {}).get("force_rmse_eV_A")))
    return it


def _is_glass_summary(summary: dict) -> bool:
    pots = summary.get("potentials")
    return isinstance(pots, list) and bool(pots) and isinstance(pots[0], dict) and "density_g_cm3" in pots[0]


def _ms(v: dict | None, fmt: str = ".3g") -> str:
    """A MeanStd as 'mean ± std' (or '-')."""
    if not v or v.get("mean") is None:
        return "-"
    sd = v.get("std")
    return f"{v['mean']:{fmt}}" + (f" ± {sd:{fmt}}" if sd is not None and v.get("n", 0) > 1 else "")


def _print_glass_summary(campaign: str, summary: dict) -> None:
    """The glass campaign as the paper tabulates it: one row per potential (mean ± σ over replicas)."""
    sp = summary.get("species", "Na")
    t = Table(title=f"campaign {campaign}: glasses (mean ± σ over replicas)")
    for c in ("potential", "engine", "glasses", "ρ g/cm³", "Tg K", "CN P-O", "CN Fe-O", "P-O-P /P", "P-O-Fe /P",
              "K GPa", "G GPa", "unstable"):
        t.add_column(c)
    d = Table(title=f"campaign {campaign}: {sp} diffusion (D in cm²/s) and Arrhenius fits")
    for c in ("potential", "heating", "D at T (K)", "Ea eV", "D0 cm²/s"):
        d.add_column(c)
    for p in summary.get("potentials", []):
        cn, bp, el = p.get("coordination") or {}, p.get("bridging_per_former") or {}, p.get("elastic_GPa") or {}
        t.add_row(p.get("name", ""), p.get("engine", ""), str(p.get("replicas", "")), _ms(p.get("density_g_cm3")),
                  _ms(p.get("tg_K"), ".4g"), _ms(cn.get("P-O")), _ms(cn.get("Fe-O")), _ms(bp.get("P-O-P")),
                  _ms(bp.get("P-O-Fe")), _ms(el.get("bulk")), _ms(el.get("shear")), str(len(p.get("unstable_runs") or [])))
        fits = {a.get("heating"): a for a in p.get("arrhenius") or []}
        for h, by_T in (p.get("diffusion_cm2_s") or {}).items():
            a = fits.get(h) or {}
            ea = f"{a['Ea_eV']:.3g} ± {a.get('sigma_Ea_eV') or 0:.2g}" if a.get("Ea_eV") is not None else "-"
            d.add_row(p.get("name", ""), h, "; ".join(f"{T}: {_ms(v, '.2e')}" for T, v in by_T.items()), ea,
                      f"{a['D0_cm2_s']:.3g}" if a.get("D0_cm2_s") is not None else "-")
    console.print(t)
    console.print(d)
    for p in summary.get("potentials", []):
        for r in p.get("unstable_runs") or []:
            console.print(f"[yellow]unstable[/] {p.get('name')}: {r}", highlight=False)
    for s in summary.get("skipped") or []:
        console.print(f"[yellow]skipped[/] {s}", highlight=False)


def _print_lfp_summary(campaign: str, summary: dict) -> None:
    """The LixFePO4 campaign: labels, fine-tuning errors, validation (vs the paper), MD rates."""
    lab = summary.get("labeling") or {}
    console.print(f"campaign {campaign}: {lab.get('n_relaxations')} relaxations ({lab.get('n_relaxations_converged')} "
                  f"converged, {lab.get('n_relax_frames')} frames), {lab.get('n_aimd_runs')} AIMD runs "
                  f"({lab.get('n_aimd_frames')} frames), {lab.get('n_failures', 0)} failed; sampled "
                  f"{lab.get('n_sampled_relax')} relaxation + {sum((lab.get('n_sampled_aimd') or {}).values())} AIMD "
                  f"frames -> dataset {summary['dataset']['name']}:{summary['dataset']['version']} "
                  f"({summary.get('n_train_frames')} train / {summary.get('n_test_frames')} test)", highlight=False)
    f = Table(title="fine-tuning: errors on the test split (energy meV/atom, force meV/Å)")
    for c in ("model", "E RMSE", "F RMSE"):
        f.add_column(c)

    def mev(m, key):
        return f"{1000 * m[key]:.1f}" if m and m.get(key) is not None else "-"

    if summary.get("base_test_metrics"):
        f.add_row("base head, zero-shot", mev(summary["base_test_metrics"], "energy_rmse"),
                  mev(summary["base_test_metrics"], "force_rmse"))
    f.add_row("Fine-tuned model", mev(summary.get("test_metrics"), "energy_rmse"), mev(summary.get("test_metrics"), "force_rmse"))
    console.print(f)
    v = Table(title="validation: Fe valence configurations recovered (SI II.A)")
    for c in ("start", "relaxations", "recovered", "structure matched", "paper"):
        v.add_column(c)
    for r in summary.get("validation") or []:
        v.add_row(r["start"], str(r["n"]), f"{r['n_recovered']} ({100 * (r.get('fraction') or 0):.0f} %)",
                  str(r["n_structure_matched"]),
                  f"{100 * r['paper_fraction']:.1f} %" if r.get("paper_fraction") is not None else "-")
    console.print(v)
    g = summary.get("gmm") or {}
    if g.get("means_A"):
        console.print(f"Fe–O radii of the relaxed structures: Gaussians at {g['means_A'][0]:.3f} and "
                      f"{g['means_A'][1]:.3f} Å (paper: Fe3+ 2.08, Fe2+ 2.16), boundary {g['boundary_A']:.3f} Å, "
                      f"Bayes error {g['bayes_error']:.3f}", highlight=False)
    md = summary.get("md") or {}
    if md.get("runs"):
        t = Table(title="MD with the fine-tuned model: rates (per Fe / per Li, 1/ps)")
        for c in ("run", "stage", "T K", "flips", "flip rate", "hops", "hop rate"):
            t.add_column(c)
        for rows in md["runs"].values():
            for r in rows:
                if r.get("failed"):
                    t.add_row(r.get("label", ""), r.get("stage") or "", "", "failed", "", "", "")
                    continue
                t.add_row(r.get("label", ""), r.get("stage") or "", _short(r.get("temperature_K")),
                          str(r.get("n_flips")), _short(r.get("flip_rate_per_ps")),
                          *((str(r.get("n_hops")), _short(r.get("hop_rate_per_ps"))) if r.get("hop_rate_per_ps")
                            is not None else ("-", "-")))
        console.print(t)
        for k, a in (md.get("arrhenius") or {}).items():
            if a.get("error"):
                console.print(f"Arrhenius {k}: no fit ({a['error']})", highlight=False)
            else:
                console.print(f"Arrhenius {k}: Ea {a['Ea_eV']:.3g} ± {a.get('Ea_sigma_eV') or 0:.2g} eV, "
                              f"A {a['A_per_ps']:.3g} /ps ({a['n_points']} T)", highlight=False)
    fp = summary.get("final_potential") or {}
    console.print(f"final potential: dp {fp.get('name')} (uuid {fp.get('uuid')}); use it elsewhere as "
                  f"{{campaign: {campaign}, which: final}}", highlight=False)


def _compact(v):
    """Summary values as a person reads them: references by kind and name, errors as E/F RMSE."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, dict):
        if "kind" in v and ("input_hash" in v or "uuid" in v):
            return f"{v['kind']} {v.get('name') or (v.get('input_hash') or '')[:12]}"
        if "force_rmse" in v and "energy_rmse" in v:
            e, f = v.get("energy_rmse"), v.get("force_rmse")
            return (f"E {e:.4g} eV/atom, F {f:.4g} eV/Å ({v.get('n_structures')} frames)"
                    if e is not None and f is not None else "n/a")
        if "force_rmse_eV_A" in v and "energy_rmse_eV_atom" in v:  # FixedSetErrors
            e, f, fm = v.get("energy_rmse_eV_atom"), v.get("force_rmse_eV_A"), v.get("force_mae_eV_A")
            mae = f", F MAE {fm:.3g} eV/Å" if fm is not None else ""
            return (f"RMSE E {e:.4g} eV/atom, F {f:.4g} eV/Å{mae} ({v.get('n_frames')} frames)"
                    if e is not None and f is not None else "n/a")
        if "name" in v and "version" in v and "input_hash" in v and len(v) <= 4:  # DatasetRef
            return f"{v['name']}:{v['version']}"
        return {k: _compact(x) for k, x in v.items() if not str(k).startswith("@")}
    if isinstance(v, list):
        return [_compact(x) for x in v]
    return v


def _short(v) -> str:
    """A summary value for a table cell."""
    v = _compact(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=_json_default, ensure_ascii=False)
    return str(v)


def load_launchpad(path: Path, connect: bool = True):
    """LaunchPad from a YAML file whose ${VARS} are expanded from the environment (credentials);
    with ``connect`` the database is pinged (5 s) and an unreachable one is a clear error."""
    import os
    import re

    import yaml
    from fireworks import LaunchPad

    text = "\n".join(ln for ln in Path(path).read_text().splitlines() if not ln.lstrip().startswith("#"))
    missing = sorted({m for m in re.findall(r"\$\{(\w+)\}", text) if m not in os.environ})
    if missing:
        raise UserError(f"{path} uses environment variables that are not set: {', '.join(missing)}",
                        "export them (e.g. in your job script or ~/.bashrc) before submitting")
    config = yaml.safe_load(os.path.expandvars(text)) or {}
    config.setdefault("mongoclient_kwargs", {}).setdefault("serverSelectionTimeoutMS", 5000)
    lp = LaunchPad.from_dict(config)
    if not connect:
        return lp
    try:
        lp.db.command("ping")
    except Exception as exc:  # noqa: BLE001 - pymongo raises several kinds; all mean: cannot connect
        from mlipflow.settings import redact_uri

        host = str(config.get("host", "localhost"))
        where = redact_uri(host) if "://" in host else f"{host}:{config.get('port', 27017)}"
        raise UserError(f"cannot connect to the LaunchPad database at {where} ({type(exc).__name__})",
                        f"check host, port and credentials in {path} and that MongoDB is reachable from here") from None
    return lp


def submit(
    campaign_file: Path = typer.Argument(..., help="Campaign YAML."),
    launchpad: Optional[Path] = typer.Option(None, help="my_launchpad.yaml (default: settings.launchpad_file)."),
    launcher: str = typer.Option("fireworks", "--launcher", help="fireworks (LaunchPad) or jobflow-remote (for compute nodes without MongoDB access)."),
    project: Optional[str] = typer.Option(None, "--project", help="jobflow-remote project (default: settings.jobflow_remote_project)."),
) -> None:
    """Submit the campaign flow: to the FireWorks LaunchPad (default) or to a jobflow-remote project."""
    from jobflow.managers.fireworks import flow_to_workflow

    from mlipflow.campaign import build_flow, load_campaign
    from mlipflow.settings import get_settings

    camp = load_campaign(campaign_file)
    settings = get_settings()
    if launcher not in ("fireworks", "jobflow-remote"):
        raise UserError(f"unknown launcher {launcher!r}", "use --launcher fireworks or --launcher jobflow-remote")
    if launcher == "jobflow-remote":
        from mlipflow.remote import submit_remote

        ids = submit_remote(build_flow(camp), project=project, settings=settings)
        console.print(f"submitted campaign {camp.name} to jobflow-remote: {len(ids)} jobs "
                      "(run them with `jf runner start`; progress: `jf job list`)")
        console.print(json.dumps({"launcher": "jobflow-remote", "jobs": len(ids)}))
        return
    lp_file = launchpad or settings.launchpad_file
    if lp_file is None or not Path(lp_file).is_file():
        raise UserError(
            f"no LaunchPad file ({lp_file or 'launchpad_file is not set'})",
            "pass --launchpad my_launchpad.yaml or set launchpad_file in ~/.mlipflow.yaml "
            "(template: deploy/my_launchpad.yaml)",
        )
    lp = load_launchpad(lp_file)
    if lp.fw_id_assigner.find_one({}) is None:  # a new, empty LaunchPad database
        lp.reset("", require_password=False)
        console.print(f"initialized an empty LaunchPad database ({lp.name})")
    flow = build_flow(camp)
    # store=None: the worker (`mlipflow worker`) installs mlipflow's store as jobflow's default,
    # so no database credentials are serialized into the Firework specs.
    wf = flow_to_workflow(flow, store=None, name=f"{camp.name}")
    mapping = lp.add_wf(wf)
    wf_id = min(mapping.values())
    by_category: dict[str, int] = {}
    for fw in wf.fws:
        key = fw.spec.get("_category") or "(any worker)"
        by_category[key] = by_category.get(key, 0) + 1
    console.print(f"submitted campaign {camp.name}: workflow id {wf_id} ({len(wf.fws)} fireworks; by category: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(by_category.items())) + ")")
    console.print(json.dumps({"workflow_id": wf_id, "fireworks": len(wf.fws), "categories": by_category}))


def worker(
    launchpad: Optional[Path] = typer.Option(None, help="my_launchpad.yaml (default: settings.launchpad_file)."),
    fworker: Optional[Path] = typer.Option(None, help="FWorker file, e.g. deploy/fworker_gpu.yaml (its category is used)."),
    nlaunches: int = typer.Option(0, help="Stop after this many launches (0: until none is ready)."),
    singleshot: bool = typer.Option(False, help="Launch one Firework and stop (for queue scripts)."),
    category: Optional[list[str]] = typer.Option(None, "--category", help="Run only Fireworks of this category (repeatable), e.g. gpu."),
) -> None:
    """Run Fireworks with mlipflow's store as jobflow's job store (use instead of rlaunch)."""
    import jobflow
    from fireworks import FWorker
    from fireworks.core.rocket_launcher import launch_rocket, rapidfire

    from mlipflow.settings import apply_thread_settings, get_settings
    from mlipflow.store import job_store

    settings = get_settings()
    apply_thread_settings(settings)
    lp_file = launchpad or settings.launchpad_file
    if lp_file is None or not Path(lp_file).is_file():
        raise UserError(f"no LaunchPad file ({lp_file})", "pass --launchpad or set launchpad_file")
    jobflow.SETTINGS.JOB_STORE = job_store(settings)
    lp = load_launchpad(lp_file)
    fw = FWorker.from_file(str(fworker)) if fworker else FWorker()
    if category:
        fw.category = category[0] if len(category) == 1 else list(category)
    wanted = [fw.category] if isinstance(fw.category, str) and fw.category else list(fw.category or [])
    if wanted and wanted != ["__none__"]:
        pending = {"state": {"$in": ["READY", "WAITING", "RESERVED", "RUNNING"]}}
        used = sorted({c for c in lp.fireworks.distinct("spec._category", pending) if c})
        if not set(wanted) & set(used):
            raise UserError(f"no Firework waiting on the LaunchPad needs category {', '.join(wanted)} "
                            f"(categories in use: {', '.join(used) or 'none'})",
                            "start the worker with one of the categories in use (--category), or check "
                            "settings.categories of the submitting machine")
    if singleshot:
        launch_rocket(lp, fw)
    else:
        rapidfire(lp, fw, nlaunches=nlaunches)


def query(
    doc_type: Optional[str] = typer.Option(None, "--type", help="Document type, e.g. potential, frame, al_iteration, campaign."),
    campaign: Optional[str] = typer.Option(None, help="Campaign name."),
    filter: Optional[str] = typer.Option(None, "--filter", help='Mongo query on job documents as JSON, e.g. \'{"output.iteration": {"$gte": 1}}\'.'),
    limit: int = typer.Option(20, help="Maximum documents (0: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Query stored documents (job outputs) by type, campaign and a Mongo filter."""
    from mlipflow.store import query_outputs

    crit = {}
    if filter:
        try:
            crit = json.loads(filter)
        except json.JSONDecodeError as exc:
            raise UserError(f"--filter is not valid JSON: {exc}", 'quote it, e.g. --filter \'{"output.kind": "ace"}\'') from None
        if not isinstance(crit, dict):
            raise UserError("--filter must be a JSON object", 'e.g. --filter \'{"output.kind": "ace"}\'')
    docs = query_outputs(crit, doc_type=doc_type, campaign=campaign, limit=limit)
    if as_json:
        print(json.dumps([_strip(d) for d in docs], default=_json_default, indent=1))
        return
    table = Table(title=f"{len(docs)} document(s)")
    for col in ("uuid", "index", "name", "type", "campaign", "completed_at"):
        table.add_column(col)
    for d in docs:
        out = d.get("output") or {}
        out = out if isinstance(out, dict) else {}
        table.add_row(d.get("uuid", "")[:36], str(d.get("index", "")), d.get("name", ""),
                      str(out.get("type", "")), str(out.get("campaign", "")), str(d.get("completed_at", ""))[:19])
    console.print(table)


def _strip(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "_id"}


def show(doc_id: str = typer.Argument(..., help="Job uuid (or its first characters) or an output input_hash.")) -> None:
    """Print one stored document as JSON."""
    from mlipflow.store import query_outputs

    docs = query_outputs({"uuid": doc_id}, limit=0)
    if not docs:
        docs = query_outputs({"output.input_hash": doc_id}, limit=0)
    if not docs and len(doc_id) >= 6:
        docs = query_outputs({"uuid": {"$regex": f"^{doc_id}"}}, limit=0)
    if not docs:
        raise UserError(f"no document with uuid or input_hash {doc_id!r}", "list documents with `mlipflow query`")
    print(json.dumps(_strip(docs[0]), default=_json_default, indent=1))


def register(app: typer.Typer) -> None:
    for fn in (doctor, config, run, submit, worker, query, show):
        app.command(fn.__name__)(fn)
