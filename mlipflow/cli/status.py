"""``mlipflow status [CAMPAIGN]``: where campaigns stand.

Local runs (``mlipflow run``) record their state in the store (``campaign_status``: running with
pid and host, completed, failed with the failed jobs' last error lines); a run whose process is
gone without recording an end was interrupted. With ``--launchpad`` the campaign's FireWorks
workflow is read instead: Fireworks per state and the last fizzled one's error. For
active-learning campaigns the per-iteration table (runs, stopped runs, candidates, selected,
labelled, failed labels, test errors) is the history of the newest iteration document, as
DP-GEN's status prints its ratios.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mlipflow.errors import UserError

console = Console()


def _alive(rec: dict) -> bool:
    if rec.get("host") != socket.gethostname() or not rec.get("pid"):
        return True  # another machine: trust the record
    try:
        os.kill(int(rec["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def state_of(rec: dict) -> str:
    """``running`` / ``completed`` / ``failed``, or ``interrupted`` for a running record whose process is gone."""
    st = rec.get("state", "?")
    return "interrupted" if st == "running" and not _alive(rec) else st


def command(
    campaign: Optional[str] = typer.Argument(None, help="Campaign name (omit to list every campaign run here)."),
    launchpad: Optional[Path] = typer.Option(None, "--launchpad", help="Read the campaign's FireWorks workflow "
                                             "from this my_launchpad.yaml instead of the local run record."),
) -> None:
    """Where a campaign stands: local run state or FireWorks states, failed jobs and their errors, and the
    active-learning iterations so far."""
    if launchpad is not None:
        if not campaign:
            raise UserError("--launchpad needs the campaign name", "e.g. mlipflow status nafepo4-paper --launchpad lp.yaml")
        _fireworks(campaign, launchpad)
        _iterations(campaign)
        return
    from mlipflow.campaign import run_states

    recs = run_states(campaign)
    if not campaign:
        if not recs:
            console.print("no campaign has been run with this store (mlipflow run CAMPAIGN.yaml)")
            return
        t = Table(title="campaigns")
        for c in ("campaign", "flow", "state", "updated (UTC)", "jobs done", "failed", "wall s"):
            t.add_column(c)
        for r in recs:
            t.add_row(r["name"], r.get("flow", ""), state_of(r), r.get("updated_at", ""),
                      str(r.get("n_jobs_finished", "")), str(r.get("n_failed", "")),
                      f"{r['wall_time_s']:.0f}" if r.get("wall_time_s") is not None else "")
        console.print(t)
        return
    if not recs:
        from mlipflow.store import query_outputs

        if not query_outputs(campaign=campaign, limit=1):
            raise UserError(f"no run of campaign {campaign!r} in this store",
                            "list the campaigns with `mlipflow status`, or check the store (`mlipflow config`)")
    for r in recs:
        st = state_of(r)
        colour = {"completed": "green", "failed": "red", "interrupted": "yellow"}.get(st, "cyan")
        line = f"campaign {r['name']} ({r.get('flow')}): [{colour}]{st}[/]"
        if st == "running":
            line += f" since {r.get('started_at')} (pid {r.get('pid')} on {r.get('host')})"
        elif st == "interrupted":
            line += f" (started {r.get('started_at')}); rerun the same command to continue"
        else:
            line += f" at {r.get('updated_at')}: {r.get('n_jobs_finished')} jobs in {r.get('wall_time_s', 0):.0f} s"
        console.print(line)
        for f in r.get("failures") or []:
            console.print(f"  [red]failed[/] {f['job']}: {f['error']}", highlight=False)
    _outputs(campaign)
    _iterations(campaign)


def _outputs(campaign: str) -> None:
    from mlipflow.store import query_outputs

    docs = query_outputs(campaign=campaign)
    if docs:
        by = Counter(f"{d['output'].get('type')}" + (f" ({d['output']['kind']})" if d["output"].get("kind") else "")
                     for d in docs if isinstance(d.get("output"), dict))
        console.print("documents: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))


def _iterations(campaign: str) -> None:
    """The history of the newest `decide` document (every iteration so far) and its stop reason."""
    from mlipflow.cli.core_commands import iteration_table
    from mlipflow.store import query_outputs

    its = [d["output"] for d in query_outputs(doc_type="al_iteration", campaign=campaign)
           if d.get("name", "").startswith("decide")]
    if not its:
        return
    last = max(its, key=lambda o: o["iteration"])
    console.print(iteration_table(last.get("history") or []))
    if last.get("stop_message"):
        console.print(f"stopped after iteration {last['iteration']}: {last['stop_message']}")


def _fireworks(campaign: str, launchpad: Path) -> None:
    from mlipflow.cli.core_commands import load_launchpad

    lp = load_launchpad(launchpad)
    wf_ids = [w["nodes"] for w in lp.workflows.find({"name": campaign}, {"nodes": 1})]
    if not wf_ids:
        raise UserError(f"no workflow named {campaign!r} in the LaunchPad {launchpad}",
                        f"submit it with `mlipflow submit CAMPAIGN.yaml --launchpad {launchpad}`")
    ids = [i for nodes in wf_ids for i in nodes]
    fws = list(lp.fireworks.find({"fw_id": {"$in": ids}}, {"fw_id": 1, "name": 1, "state": 1, "launches": 1}))
    states = Counter(f["state"] for f in fws)
    console.print(f"campaign {campaign} on FireWorks ({len(wf_ids)} workflow(s), {len(fws)} Fireworks): "
                  + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    fizzled = [f for f in fws if f["state"] == "FIZZLED"]
    if fizzled:
        last = max(fizzled, key=lambda f: f["fw_id"])
        err = ""
        if last.get("launches"):
            launch = lp.launches.find_one({"launch_id": last["launches"][-1]}, {"action": 1})
            exc = ((launch or {}).get("action") or {}).get("stored_data", {}).get("_exception", {})
            err = "\n".join((exc.get("_stacktrace") or "").strip().splitlines()[-3:])
        console.print(f"  [red]fizzled[/] {last['name']} (fw_id {last['fw_id']}): {err}", highlight=False)
