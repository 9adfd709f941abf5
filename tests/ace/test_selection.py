"""MaxVol (D-optimality) selection relative to the current active set (pyace Python API)."""

from __future__ import annotations

import numpy as np
import pytest

from mlipflow.engines.ase_md import run_ase_md
from mlipflow.engines.protocols import melt_quench_protocol
from mlipflow.engines.selection import candidate_gammas, select_maxvol
from mlipflow.errors import UserError


@pytest.fixture(scope="module")
def candidates(tiny_fit, emt_data):
    """Frames of two short γ-tracked runs (a pure-Cu and a Cu-Al cell), every 5th step kept."""
    from pyace import PyACECalculator

    calc = PyACECalculator(tiny_fit.potential_yaml)
    calc.set_active_set(tiny_fit.active_set)
    frames = []
    for k, seed in ((1, 1), (3, 2)):
        p = melt_quench_protocol(t_melt=2000, melt_ps=0.06, cooling_rate_K_per_ps=50_000, t_final=300,
                                 timestep_fs=2, gamma_lo=0.0, gamma_hi=None, gamma_every=5, seed=seed)
        r = run_ase_md(emt_data["items"][k][0] * (1, 2, 2), calc, p, progress=False, run_id=f"run{k}")
        frames += [f for f in r.frames if f.info["reason"] == "gamma"]
    return frames


def test_selection_bounded_high_gamma(tiny_fit, candidates):
    n = 5
    res = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=n)
    assert 0 < res.n_selected <= n
    assert len(res.records) == len(candidates) == res.n_candidates
    sel = set(res.selected_indices)
    g = res.gamma
    assert all(g[i] > res.gamma_tolerance for i in sel)  # only extrapolative frames enlarge the volume
    assert np.mean(g[list(sel)]) > np.mean(g[[i for i in range(len(g)) if i not in sel]])
    for i, rec in enumerate(res.records):
        assert rec.selected == (i in sel) and rec.reason
        assert rec.max_gamma == pytest.approx(g[i])
        assert rec.run in ("run1", "run3")
    # the full MaxVol set is ranked, and the chosen ones are its top n
    assert res.selected_indices == res.maxvol_indices[:n]
    assert any("beyond max_structures" in r.reason for r in res.records) or len(res.maxvol_indices) <= n
    stats = res.gamma_stats()
    assert stats["max"] == pytest.approx(g.max()) and stats["median"] <= stats["p90"] <= stats["max"]


def test_selection_is_diverse(tiny_fit, candidates):
    """An exact duplicate adds no volume: a frame and its copy are never both chosen."""
    res0 = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=50)
    top = res0.selected_indices[0]
    dup = candidates + [candidates[top].copy()]
    res = select_maxvol(dup, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=50)
    assert not ({top, len(dup) - 1} <= set(res.selected_indices))
    assert res.n_selected <= 50


def test_interpolative_frames_not_selected(tiny_fit, emt_data):
    """Most training structures lie inside the active set (γ <= 1); those are never selected.
    (pace_activeset leaves out atoms with force-error outliers, so a few training atoms exceed 1.)"""
    train = [a for a, _, _ in emt_data["items"][:30]]
    res = select_maxvol(train, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=10)
    g = candidate_gammas(train, tiny_fit.potential_yaml, tiny_fit.active_set)
    assert np.mean(g <= 1.0 + 1e-6) >= 0.5
    assert np.allclose(g, res.gamma)
    interior = [rec for gi, rec in zip(g, res.records) if gi < 1.0 - 1e-6]
    assert interior  # (γ == 1: the frame's own atoms are active-set rows: a tie MaxVol may take)
    for rec in interior:
        assert not rec.selected and "tolerance" in rec.reason


def test_force_include_and_zero(tiny_fit, candidates):
    res = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=0,
                        force_include=[0, 1])
    assert res.selected_indices == [0, 1] and res.records[0].reason.startswith("forced")
    with pytest.raises(UserError):
        select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=-1)


def test_foreign_element_rejected(tiny_fit):
    from ase.build import bulk

    with pytest.raises(UserError, match="Ni"):
        select_maxvol([bulk("Ni", "fcc", a=3.5)], tiny_fit.potential_yaml, tiny_fit.active_set)


def test_collapsed_geometries_are_not_selected(tiny_fit, candidates):
    """A frame with a pair at a fraction of the covalent-radii sum is recorded as rejected, never
    selected; the others go through MaxVol as before."""
    from mlipflow.engines.ase_md import frames_to_dict
    from mlipflow.engines.potentials import ref_from_path
    from mlipflow.engines.selection import closest_contact
    from mlipflow.makers.ace import MaxVolSelector
    from mlipflow.schemas import MDRunDoc

    bad = candidates[0].copy()
    bad.info = dict(candidates[0].info, step=99999)
    pos = bad.get_positions()
    pos[1] = pos[0] + [0.4, 0.0, 0.0]  # Cu-Cu at 0.4 Å: 0.15 of 2 × 1.32 Å
    bad.set_positions(pos)
    ratio, pair, d = closest_contact(bad)
    assert ratio == pytest.approx(0.4 / (2 * 1.32), abs=1e-3) and d == pytest.approx(0.4, abs=1e-6)
    assert closest_contact(candidates[0])[0] > 0.5
    proto = melt_quench_protocol(t_melt=2000, melt_ps=0.06, cooling_rate_K_per_ps=50_000, t_final=300,
                                 timestep_fs=2, gamma_lo=0.0, gamma_hi=None, gamma_every=5)
    run = MDRunDoc(run_id="r", engine="ase", protocol=proto, trajectory=frames_to_dict([*candidates[:6], bad]))
    ref = ref_from_path(tiny_fit.potential_yaml)
    out = MaxVolSelector(max_structures=50).select([run], ref)
    recs = out["records"]
    assert out["n_candidates"] == 7 and out["n_rejected_geometry"] == 1
    rej = [r for r in recs if r["step"] == 99999]
    assert len(rej) == 1 and not rej[0]["selected"] and "collapsed geometry" in rej[0]["reason"]
    assert all(r["step"] != 99999 for r in recs if r["selected"])
    keep_all = MaxVolSelector(max_structures=50, min_contact=None).select([run], ref)
    assert keep_all["n_rejected_geometry"] == 0


def test_gamma_cap_and_fill_rounds(tiny_fit, candidates):
    """gamma_cap keeps far-extrapolating frames out; fill_to repeats MaxVol on what is left, each
    round a D-optimal set against the same active set, so more frames are chosen than one pass
    picks, none twice, none capped, and the first round is the one-pass choice."""
    one = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=len(candidates))
    g = one.gamma
    cap = float(np.percentile(g[g > one.gamma_tolerance], 75))
    res = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=len(candidates),
                        gamma_cap=cap, fill_to=len(candidates))
    assert all(g[i] <= cap for i in res.selected_indices)
    capped = [r for r in res.records if "gamma_cap" in r.reason]
    assert capped and all(not r.selected and r.max_gamma > cap for r in capped)
    full = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=len(candidates),
                         fill_to=len(candidates))
    assert len(full.selected_indices) == len(set(full.selected_indices)) > one.n_selected
    assert full.selected_indices[:one.n_selected] == one.selected_indices
    assert any("(round 2)" in r.reason for r in full.records if r.selected)
    # only extrapolative frames in any round, and fill_to bounds the count
    assert all(g[i] > one.gamma_tolerance for i in full.selected_indices)
    few = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=50,
                        fill_to=one.n_selected + 1)
    assert one.n_selected < few.n_selected <= 50


def test_cli_pool_select_maxvol(tiny_fit, candidates, tmp_path, mlipflow_home):
    """`potential select "DIR/*.extxyz" --from POT.yaml --max N`: MaxVol against the potential's active
    set (found beside the .yaml), filled round after round up to N, written out and stored."""
    import shutil

    from ase.io import read, write

    from mlipflow.cli.main import main
    from mlipflow.store import query_outputs

    pot = tmp_path / "pot"
    pot.mkdir()
    shutil.copy(tiny_fit.potential_yaml, pot / "p.yaml")
    write(tmp_path / "c1.extxyz", candidates[:len(candidates) // 2])
    write(tmp_path / "c2.extxyz", candidates[len(candidates) // 2:])
    out = tmp_path / "chosen.extxyz"
    args = ["potential", "select", str(tmp_path / "c*.extxyz"), "--from", str(pot / "p.yaml"), "--max", "6",
            "--out", str(out)]
    assert main(args) == 2  # no active set beside the .yaml: refused, with the fix
    shutil.copy(tiny_fit.active_set, pot / "p.asi")
    assert main(args) == 0
    ref = select_maxvol(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, max_structures=6, fill_to=6,
                        min_contact=0.5)
    doc = query_outputs(doc_type="selection")[0]["output"]
    assert doc["method"] == "maxvol" and doc["n_candidates"] == len(candidates)
    assert doc["selected_indices"] == ref.selected_indices and doc["n_selected"] == len(read(out, index=":"))
    assert doc["parameters"]["fill_to"] == 6


def test_gammas_in_chunks_equal_one_pass(tiny_fit, candidates):
    """γ of a frame depends on that frame alone: chunked evaluation (progress for large pools) gives
    the same numbers as one pass."""
    a = candidate_gammas(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, chunk=3)
    b = candidate_gammas(candidates, tiny_fit.potential_yaml, tiny_fit.active_set, chunk=10**6)
    assert len(a) == len(candidates) > 3 and np.array_equal(a, b)
