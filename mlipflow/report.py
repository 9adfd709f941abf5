"""One self-contained HTML report per campaign, built from the stored documents only.

``build_report(campaign)`` finds the campaign's document (``output.type == "campaign"``), every
output of the same flow (jobflow's ``hosts``: the root flow's uuid) and renders, by what the
summary holds:

* active learning: headline, errors of first and final potential on both test sets, the
  iteration table, test error and uncertainty per iteration, γ (or deviation) distributions of
  the candidates, stability runs, the dataset's composition coverage (ternary diagram);
* glass campaigns: the Table-1-style structure table (mean ± σ over replicas), diffusion and
  Arrhenius fits, and the analyses' plots (g(r), S(Q), MSD, van Hove, ...);
* the LixFePO4 campaign: labels, fine-tuning errors, validation vs the paper, rates per run,
  Arrhenius fits (Table I), preference ratios (Table II), layer profiles, the analyses' plots;
* anything else: the summary as a table.

Plots are embedded as PNG data URIs (no network, no JavaScript); a plot file that is not on this
machine is named instead. Provenance (versions, input hashes, the campaign's configuration and
the settings without secrets) closes the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from mlipflow.errors import UserError

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#1d2430;background:#fff;line-height:1.4}
h1{font-size:1.7em;border-bottom:3px solid #2f6db5;padding-bottom:.2em}
h2{font-size:1.3em;margin-top:1.8em;color:#2f6db5}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #c9d1dc;padding:.25em .6em;text-align:right}th{background:#eef3f9}
td:first-child,th:first-child{text-align:left}
.note{color:#5b6675;font-size:.9em}.bad{color:#b3261e}.ok{color:#1e7b34}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figcaption{font-size:.85em;color:#5b6675}
img{max-width:520px;border:1px solid #e1e6ee}pre{background:#f5f7fa;padding:.8em;overflow-x:auto;font-size:.8em}
"""


# ----------------------------------------------------------------------------- small helpers


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def fmt(v: Any, spec: str = ".4g") -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def ms(v: dict | None, spec: str = ".3g") -> str:
    """A MeanStd as 'mean ± σ'."""
    if not v or v.get("mean") is None:
        return "–"
    sd = v.get("std")
    return format(v["mean"], spec) + (f" ± {format(sd, spec)}" if sd is not None and (v.get("n") or 0) > 1 else "")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> str:
    out = ["<table>"]
    if caption:
        out.append(f"<caption class='note'>{esc(caption)}</caption>")
    out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{c if isinstance(c, Raw) else esc(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


class Raw(str):
    """Already-escaped HTML for a table cell."""


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_from_file(path: str | None, caption: str) -> str:
    if not path:
        return ""
    p = Path(path)
    if not p.is_file() or p.suffix.lower() != ".png":
        return f"<p class='note'>{esc(caption)}: plot file not on this machine ({esc(path)})</p>"
    return (f"<figure><img alt='{esc(caption)}' src='{png_data_uri(p.read_bytes())}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def figure_from_matplotlib(fig, caption: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return (f"<figure><img alt='{esc(caption)}' src='{png_data_uri(buf.getvalue())}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _metrics(m: dict | None) -> tuple[str, str]:
    m = m or {}
    return fmt(m.get("energy_rmse")), fmt(m.get("force_rmse"))


# ----------------------------------------------------------------------------- documents


def campaign_documents(campaign: str, settings=None) -> tuple[dict, list[dict]]:
    """The campaign's document (newest) and every job output of the same flow."""
    from mlipflow.store import query_outputs

    docs = query_outputs(doc_type="campaign", campaign=campaign, limit=1, settings=settings)
    if not docs:
        raise UserError(f"no campaign document named {campaign!r} in the store",
                        "run the campaign to its end first (`mlipflow status` lists the campaigns and their state)")
    top = docs[0]
    hosts = top.get("hosts") or []
    members = query_outputs({"hosts": hosts[-1]}, settings=settings) if hosts else [top]
    return top, members


def _by_type(members: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for d in members:
        o = d.get("output")
        if isinstance(o, dict) and o.get("type"):
            out.setdefault(o["type"], []).append(d)
    return out


# ----------------------------------------------------------------------------- sections


def _section_al(summary: dict, types: dict[str, list[dict]]) -> list[str]:
    plt = _plt()
    out = ["<h2>Active learning</h2>",
           f"<p>{fmt(summary.get('iterations'))} iteration(s); stopped: <b>{esc(summary.get('stop_reason'))}</b> "
           f"— {esc(summary.get('stop_message'))}. Initial dataset {fmt(summary.get('initial_frames'))} frames, "
           f"{fmt(summary.get('al_labels'))} frames labelled by active learning.</p>"]
    comp = summary.get("comparisons") or {}
    if comp:
        rows = []
        for tset, by_pot in comp.items():
            for pot, m in by_pot.items():
                rows.append([tset, pot, *_metrics(m), fmt((m or {}).get("n_structures"))])
        out.append(table(["test set", "potential", "E RMSE (eV/atom)", "F RMSE (eV/Å)", "frames"], rows,
                         "first and final potential on the same test sets"))
    fixed = summary.get("fixed_test_set") or {}
    if fixed:
        ds = fixed.get("dataset") or {}
        out.append(table(["potential", "E RMSE (eV/atom)", "F RMSE (eV/Å)", "frames"],
                         [[pot, fmt((fixed.get(pot) or {}).get("energy_rmse_eV_atom")),
                           fmt((fixed.get(pot) or {}).get("force_rmse_eV_A")), fmt((fixed.get(pot) or {}).get("n_frames"))]
                          for pot in ("first", "final")],
                         f"first and final potential on the fixed independent test set ({esc(ds.get('name'))} "
                         f"v{fmt(ds.get('version'))}, labelled once before the loop)"))
    hist = summary.get("history") or []
    if hist:
        rows = [[h.get("iteration"), fmt(h.get("t_melt")), h.get("n_runs"), h.get("n_terminated"), h.get("n_candidates"),
                 h.get("n_selected"), h.get("n_labeled"), h.get("n_label_failed"), h.get("n_label_rejected", 0),
                 fmt(h.get("uncertainty_max")),
                 fmt((h.get("test") or {}).get("force_rmse")), fmt((h.get("previous_test") or {}).get("force_rmse")),
                 fmt((h.get("fixed_test") or {}).get("force_rmse_eV_A"))]
                for h in hist]
        out.append(table(["iteration", "T melt (K)", "runs", "terminated", "candidates", "selected", "labelled",
                          "failed labels", "rejected (force)", "max uncertainty", "F RMSE new", "F RMSE previous", "F RMSE fixed set"], rows,
                         "per iteration; test errors of the new potential and of the previous one on the same test set, "
                         "and of the new one on the fixed test set"))
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
        it = [h["iteration"] for h in hist]
        ax[0].plot(it, [(h.get("test") or {}).get("force_rmse") or float("nan") for h in hist], "o-", label="new")
        ax[0].plot(it, [(h.get("previous_test") or {}).get("force_rmse") or float("nan") for h in hist], "s--",
                   label="previous, same set")
        ax[0].set_xlabel("iteration")
        ax[0].set_ylabel("test force RMSE (eV/Å)")
        ax[0].legend(fontsize=8)
        ax[1].bar(it, [h.get("n_labeled") or 0 for h in hist], label="labelled")
        ax[1].bar(it, [h.get("n_label_failed") or 0 for h in hist], bottom=[h.get("n_labeled") or 0 for h in hist],
                  color="C3", label="failed")
        ax[1].set_xlabel("iteration")
        ax[1].set_ylabel("frames")
        ax[1].legend(fontsize=8)
        out.append(figure_from_matplotlib(fig, "test error and labels per iteration"))
    its = sorted((d["output"] for d in types.get("al_iteration", [])), key=lambda o: o.get("iteration", 0))
    seen, gammas = set(), []
    for o in its:
        if o.get("iteration") in seen or not o.get("candidates"):
            continue
        seen.add(o.get("iteration"))
        gammas.append((o["iteration"], [c["max_gamma"] for c in o["candidates"] if c.get("max_gamma") is not None]))
    if gammas:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for i, g in gammas:
            ax.hist([min(v, 1e3) for v in g], bins=30, histtype="step", label=f"iteration {i} ({len(g)})")
        ax.set_xlabel("candidate max γ (or max force deviation)")
        ax.set_ylabel("frames")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        out.append(figure_from_matplotlib(fig, "uncertainty of the candidates"))
    stab = summary.get("stability") or {}
    if stab:
        out.append(table(["potential", "bounded", "steps", "reason"],
                         [[k, fmt(v.get("bounded")), fmt(v.get("steps_done")), v.get("reason") or
                           v.get("termination_reason") or ""] for k, v in stab.items()], "stability test"))
    out += _composition_coverage(types)
    for name, path in (summary.get("plots") or {}).items():
        out.append(figure_from_file(path, name))
    for d in types.get("potential", []):
        o = d["output"]
        for name, path in (o.get("plots") or {}).items():
            if "parity" in name:
                out.append(figure_from_file(path, f"{o.get('name')}: {name}"))
    return out


def _composition_coverage(types: dict[str, list[dict]]) -> list[str]:
    """Ternary Na2O–FeO–P2O5 diagram of the newest dataset version's frames (where the elements fit)."""
    from mlipflow.engines.repository import load_dataset

    datasets = [d["output"].get("dataset") for d in types.get("potential", []) if d["output"].get("dataset")]
    if not datasets:
        return []
    ref = max(datasets, key=lambda r: r.get("version", 0))
    try:
        doc, frames = load_dataset(ref["name"], ref["version"])
    except UserError:
        return []
    pts = []
    for f in frames:
        c = {el: 0 for el in ("Na", "Fe", "P")}
        for site in f.structure.get("sites", []):
            el = site["species"][0]["element"]
            if el in c:
                c[el] += 1
        units = (c["Na"] / 2, c["Fe"], c["P"] / 2)  # Na2O, FeO, P2O5
        tot = sum(units)
        if tot:
            pts.append(tuple(u / tot for u in units))
    if not pts:
        return []
    plt = _plt()
    import numpy as np

    a = np.array(pts)
    x = a[:, 1] + 0.5 * a[:, 2]
    y = (np.sqrt(3) / 2) * a[:, 2]
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1, 0.5, 0], [0, 0, np.sqrt(3) / 2, 0], "k-", lw=1)
    ax.scatter(x, y, s=12, alpha=0.5)
    for (tx, ty), lab in (((-0.04, -0.05), "Na2O"), ((0.98, -0.05), "FeO"), ((0.45, 0.89), "P2O5")):
        ax.text(tx, ty, lab, fontsize=9)
    ax.set_axis_off()
    ax.set_aspect("equal")
    return ["<h3>Composition coverage</h3>",
            figure_from_matplotlib(fig, f"dataset {ref['name']}:{ref['version']} ({len(pts)} frames), mole fractions")]


def _analysis_plots(types: dict[str, list[dict]], kinds: Sequence[str]) -> list[str]:
    out = []
    for d in types.get("analysis", []):
        o = d["output"]
        if o.get("kind") not in kinds:
            continue
        label = (o.get("results") or {}).get("label") or o.get("source") or ""
        for name, path in (o.get("plots") or {}).items():
            out.append(figure_from_file(path, f"{o.get('kind')} {label}: {name}"))
    return out


def _section_glass(summary: dict, types: dict[str, list[dict]]) -> list[str]:
    sp = summary.get("species", "Na")
    rows, drows = [], []
    for p in summary.get("potentials", []):
        cn, bp, el = p.get("coordination") or {}, p.get("bridging_per_former") or {}, p.get("elastic_GPa") or {}
        rows.append([p.get("name", ""), p.get("engine", ""), p.get("replicas", ""), ms(p.get("density_g_cm3")),
                     ms(p.get("tg_K"), ".4g"), ms(cn.get("P-O")), ms(cn.get("Fe-O")), ms(bp.get("P-O-P")),
                     ms(bp.get("P-O-Fe")), ms(el.get("bulk")), ms(el.get("shear")), len(p.get("unstable_runs") or [])])
        fits = {a.get("heating"): a for a in p.get("arrhenius") or []}
        for h, by_T in (p.get("diffusion_cm2_s") or {}).items():
            a = fits.get(h) or {}
            ea = f"{a['Ea_eV']:.3g} ± {a.get('sigma_Ea_eV') or 0:.2g}" if a.get("Ea_eV") is not None else "–"
            drows.append([p.get("name", ""), h, "; ".join(f"{T} K: {ms(v, '.2e')}" for T, v in by_T.items()), ea])
    out = ["<h2>Glasses</h2>",
           table(["potential", "engine", "glasses", "ρ (g/cm³)", "Tg (K)", "CN P–O", "CN Fe–O", "P–O–P per P",
                  "P–O–Fe per P", "K (GPa)", "G (GPa)", "unstable runs"], rows,
                 "mean ± σ over replicas; bridging as the NaFePO4 paper's Table 1 counts it")]
    if drows:
        out.append(table(["potential", "heating", f"D({sp}) (cm²/s) at T", "Ea (eV)"], drows, "diffusion and Arrhenius fits"))
    for p in summary.get("potentials", []):
        for r in p.get("unstable_runs") or []:
            out.append(f"<p class='bad'>unstable ({esc(p.get('name'))}): {esc(r)}</p>")
    out.append("<h3>Analyses</h3>")
    out += _analysis_plots(types, ("structure", "msd", "diffusion", "arrhenius", "van-hove", "vanhove", "tg",
                                   "fast-slow", "elastic"))
    return out


def _section_lfp(summary: dict, types: dict[str, list[dict]]) -> list[str]:
    lab = summary.get("labeling") or {}
    ds = summary.get("dataset") or {}
    out = ["<h2>LixFePO4: labels and fine-tuning</h2>",
           f"<p>{fmt(lab.get('n_relaxations'))} relaxations ({fmt(lab.get('n_relaxations_converged'))} converged, "
           f"{fmt(lab.get('n_relax_frames'))} frames), {fmt(lab.get('n_aimd_runs'))} AIMD runs "
           f"({fmt(lab.get('n_aimd_frames'))} frames), {fmt(lab.get('n_failures'))} failed; sampled "
           f"{fmt(lab.get('n_sampled_relax'))} relaxation frames and AIMD frames per x {esc(lab.get('n_sampled_aimd'))} "
           f"→ dataset {esc(ds.get('name'))}:{esc(ds.get('version'))} ({fmt(summary.get('n_train_frames'))} train, "
           f"{fmt(summary.get('n_test_frames'))} test). Labeler: {esc(summary.get('labeler'))}.</p>"]
    rows = []
    if summary.get("base_test_metrics"):
        rows.append(["base head, zero-shot", *_metrics(summary["base_test_metrics"])])
    rows.append(["fine-tuned", *_metrics(summary.get("test_metrics"))])
    out.append(table(["model", "E RMSE (eV/atom)", "F RMSE (eV/Å)"], rows, "errors on the test split (dp test)"))
    out.append("<h2>Validation (SI II.A)</h2>")
    out.append(table(["start", "relaxations", "recovered", "fraction", "structure matched", "paper"],
                     [[r["start"], r["n"], r["n_recovered"], fmt(r.get("fraction"), ".2f"), r["n_structure_matched"],
                       fmt(r.get("paper_fraction"), ".3f")] for r in summary.get("validation") or []],
                     "Fe valence configurations recovered by relaxing with the fine-tuned model"))
    g = summary.get("gmm") or {}
    if g.get("means_A"):
        out.append(f"<p>Fe–O radii of the relaxed structures: two Gaussians at {g['means_A'][0]:.3f} and "
                   f"{g['means_A'][1]:.3f} Å (paper: Fe3+ ≈ 2.08, Fe2+ ≈ 2.16 Å), boundary {g['boundary_A']:.3f} Å, "
                   f"Bayes error {g['bayes_error']:.3f}.</p>")
    for name, path in (summary.get("plots") or {}).items():
        out.append(figure_from_file(path, name))
    md = summary.get("md") or {}
    if md.get("runs"):
        out.append("<h2>MD with the fine-tuned model: polaron kinetics</h2>")
        rows, prs, layers = [], [], []
        for group, runs in md["runs"].items():
            for r in runs:
                if r.get("failed"):
                    rows.append([group, r.get("label"), r.get("stage"), "", Raw("<span class='bad'>failed</span>"),
                                 "", "", ""])
                    continue
                hops = r.get("hop_rate_per_ps") is not None  # None: hops not analysed (li_hops off or skipped)
                rows.append([group, r.get("label"), r.get("stage"), fmt(r.get("temperature_K")), fmt(r.get("n_flips")),
                             fmt(r.get("flip_rate_per_ps")), fmt(r.get("n_hops")) if hops else "–",
                             fmt(r.get("hop_rate_per_ps"))])
                if r.get("preference_ratio"):
                    prs.append((f"{r.get('label')} {r.get('stage')}", r["preference_ratio"]))
                if group == "interface" and r.get("layer_fe3_fraction"):
                    layers.append((r.get("label"), r["layer_fe3_fraction"], r.get("layer_flip_rate_per_ps") or []))
        out.append(table(["group", "run", "stage", "T (K)", "flips", "flip rate (1/ps/Fe)", "Li hops",
                          "hop rate (1/ps/Li)"], rows))
        arr = md.get("arrhenius") or {}
        out.append(table(["fit", "A (1/ps)", "Ea (eV)", "σ Ea (eV)", "temperatures", "note"],
                         [[k, fmt(a.get("A_per_ps")), fmt(a.get("Ea_eV")), fmt(a.get("Ea_sigma_eV")),
                           fmt(a.get("n_points")), a.get("error") or ""] for k, a in arr.items()],
                         "Table I analogue: cycles-flip = bulk Fe flips, cycles-hop = bulk Li hops, interface-flip"))
        if prs:
            keys = sorted({k for _, p in prs for k in p})
            out.append(table(["run", *keys], [[n, *[fmt(p.get(k)) for k in keys]] for n, p in prs],
                             "Table II analogue: preference ratios of same- vs opposite-sign flip pairs"))
        if layers:
            plt = _plt()
            fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
            for name, f3, fr in layers:
                ax[0].plot(range(len(f3)), f3, "o-", label=name)
                if fr:
                    ax[1].plot(range(len(fr)), fr, "o-", label=name)
            ax[0].set_xlabel("Fe layer along y")
            ax[0].set_ylabel("Fe3+ fraction")
            ax[1].set_xlabel("Fe layer along y")
            ax[1].set_ylabel("flip rate (1/ps/Fe)")
            ax[0].legend(fontsize=8)
            out.append(figure_from_matplotlib(fig, "interface: layer profiles (Fig. 4 analogue)"))
        out.append("<h3>Analyses</h3>")
        out += _analysis_plots(types, ("polarons", "polaron-arrhenius"))
    return out


def _section_generic(summary: dict) -> list[str]:
    rows = [[k, json.dumps(v, default=str)[:400] if isinstance(v, (dict, list)) else fmt(v)] for k, v in summary.items()]
    return ["<h2>Summary</h2>", table(["quantity", "value"], rows)]


def _section_validation(docs: list[dict]) -> list[str]:
    """Validation documents (``mlipflow potential validate --campaign``): problems, errors per
    composition, E–V curves against the reference, melt stability, uncertain production frames."""
    plt = _plt()
    from mlipflow.engines.validation import plot_eos

    out = ["<h2>Validation before production</h2>"]
    for d in docs:
        v = d["output"]
        pot = v.get("potential") or {}
        out.append(f"<h3>{esc(pot.get('name') or pot.get('kind'))} ({esc((pot.get('input_hash') or '')[:12])})</h3>")
        problems = v.get("problems") or []
        out.append("<p><b>all checks passed</b></p>" if not problems else
                   "<ul>" + "".join(f"<li class='bad'>{esc(p)}</li>" for p in problems) + "</ul>")
        if v.get("by_composition"):
            out.append(table(["composition", "frames", "energy RMSE (eV/atom)", "force RMSE (eV/Å)"],
                             [[r["composition"], r["n_frames"], *_metrics(r.get("errors"))] for r in v["by_composition"]],
                             "errors per composition region"))
        if v.get("eos"):
            out.append(table(["crystal", "V0 (Å³/atom)", "reference V0", "ΔV0", "B0 (GPa)", "reference B0", "ΔB0"],
                             [[e["name"], fmt(e.get("v0_A3_atom")), fmt(e.get("reference_v0_A3_atom")),
                               fmt(e.get("v0_error"), "+.1%"), fmt(e.get("b0_GPa")), fmt(e.get("reference_b0_GPa")),
                               fmt(e.get("b0_error"), "+.0%")] for e in v["eos"]], "E–V curves (Birch–Murnaghan)"))
            fig = plt.figure(figsize=(3.2 * len(v["eos"]), 3.0))
            out.append(figure_from_matplotlib(plot_eos(v["eos"], fig=fig), "E–V curves: potential (lines), reference (points)"))
        st = v.get("stability")
        if st:
            th = v.get("thresholds") or {}
            out.append(f"<p>melt stability at {fmt(th.get('stability_temperature_K'))} K on {fmt(st.get('natoms'))} atoms: "
                       f"<b>{'bounded' if st.get('bounded') else 'not bounded'}</b> after {fmt(st.get('steps_done'))} steps"
                       f"{'' if st.get('bounded') else ' — ' + esc(st.get('reason'))}</p>")
        u = v.get("uncertainty")
        if u:
            out.append(f"<p>production frames ({esc(u.get('source'))}): {fmt(u.get('n_above'))} of {fmt(u.get('n_frames'))} "
                       f"({fmt(u.get('fraction_above'), '.1%')}) with {esc(u.get('signal'))} above {fmt(u.get('threshold'))}</p>")
    return out


def _provenance(top: dict, members: list[dict], settings) -> list[str]:
    from mlipflow.settings import public_settings

    out = top["output"]
    rows = [[d["output"].get("type"), d.get("name") or "", (d["output"].get("input_hash") or "")[:16], d.get("uuid", "")]
            for d in members if isinstance(d.get("output"), dict)]
    vers = out.get("versions") or {}
    return ["<h2>Provenance</h2>",
            table(["package", "version"], sorted(vers.items())),
            f"<p class='note'>campaign input hash {esc(out.get('input_hash'))}; document created {esc(out.get('created_at'))}</p>",
            "<details><summary>documents of this campaign</summary>",
            table(["type", "job", "input hash", "uuid"], rows), "</details>",
            "<h3>Campaign configuration</h3>", f"<pre>{esc(json.dumps(out.get('config') or {}, indent=1, default=str))}</pre>",
            "<h3>Settings (secrets removed)</h3>",
            f"<pre>{esc(json.dumps(public_settings(settings), indent=1, default=str))}</pre>"]


def build_report(campaign: str, settings=None) -> str:
    """The campaign's report as one HTML string."""
    from collections import Counter

    from mlipflow.settings import get_settings

    settings = settings or get_settings()
    top, members = campaign_documents(campaign, settings)
    out = top["output"]
    summary = dict(out.get("summary") or {})
    types = _by_type(members)
    counts = Counter(d["output"]["type"] for d in members if isinstance(d.get("output"), dict) and d["output"].get("type"))
    body = [f"<h1>Campaign {esc(campaign)}</h1>",
            f"<p>status <b>{esc(out.get('status'))}</b>; finished {esc(top.get('completed_at'))}; "
            f"{sum(counts.values())} documents: " + ", ".join(f"{esc(k)} {v}" for k, v in sorted(counts.items())) + "</p>"]
    if "history" in summary and "first_potential" in summary:
        body += _section_al(summary, types)
    elif isinstance(summary.get("potentials"), list) and summary["potentials"] and "density_g_cm3" in summary["potentials"][0]:
        body += _section_glass(summary, types)
    elif "final_potential" in summary and "validation" in summary:
        body += _section_lfp(summary, types)
    else:
        body += _section_generic(summary)
    from mlipflow.store import query_outputs

    vals = list(types.get("validation", []))
    seen = {d.get("uuid") for d in vals}
    vals += [d for d in query_outputs(doc_type="validation", campaign=campaign, settings=settings) if d.get("uuid") not in seen]
    if vals:
        body += _section_validation(vals)
    body += _provenance(top, members, settings)
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>mlipflow report: {esc(campaign)}</title><style>{CSS}</style></head><body>"
            + "\n".join(body) + "<p class='note'>made by mlipflow report</p></body></html>")


def write_report(campaign: str, out: str | Path | None = None, settings=None) -> Path:
    path = Path(out) if out else Path(f"{campaign}-report.html")
    text = build_report(campaign, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


__all__ = ["build_report", "write_report", "campaign_documents"]
