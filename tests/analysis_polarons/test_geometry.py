"""Neighbour search (triclinic-safe), event-pair preference ratios, Li hops between known sites and the
layer profile of a two-domain (LiFePO4 | FePO4) cell, on synthetic olivine data with planted truth."""

from __future__ import annotations

import numpy as np
import pytest

from mlipflow.analysis import polarons as pol
from mlipflow.analysis.io import Frame

from .synth import Olivine, markov_states

DT = 0.01


def test_bond_lengths_triclinic_equal_orthorhombic():
    """The same olivine lattice written with a sheared cell (b' = b + a) gives the same Fe–O bonds, Fe layers
    and Fe–Fe pair distances (explicit-image search) as the orthorhombic cell (periodic kd-tree)."""
    ol = Olivine((1, 2, 2), seed=0)
    rng = np.random.default_rng(0)
    pos = ol.pos + rng.normal(scale=0.05, size=ol.pos.shape)
    sheared = ol.cell.copy()
    sheared[1] = ol.cell[1] + ol.cell[0]
    b1 = pol.fe_o_bond_lengths(Frame(positions=pos, cell=ol.cell), ol.fe, ol.o)
    b2 = pol.fe_o_bond_lengths(Frame(positions=pos, cell=sheared), ol.fe, ol.o)
    np.testing.assert_allclose(b1, b2, atol=1e-10)
    assert 2.05 < b1.mean() < 2.25
    d1, j1 = pol.periodic_knn(pos[ol.fe], pos[ol.o], ol.cell, k=7, rmax=3.5)
    d2, j2 = pol.periodic_knn(pos[ol.fe], pos[ol.o], sheared, k=7, rmax=3.5)
    np.testing.assert_allclose(d1, d2, atol=1e-10)
    assert (j1 == j2).all()
    l1, c1 = pol.fe_layers(pos[ol.fe], ol.cell, None, "y")
    l2, c2 = pol.fe_layers(pos[ol.fe], sheared, None, "y")
    assert (l1 == l2).all() and np.allclose(c1, c2) and len(c1) == 4
    ev = (np.arange(16), np.arange(16), np.where(np.arange(16) % 2, 1, -1))
    p1 = pol.event_pair_statistics(*ev, pos[ol.fe], ol.cell, None, DT)
    p2 = pol.event_pair_statistics(*ev, pos[ol.fe], sheared, None, DT)
    assert p1["counts"] == p2["counts"] and p1["n_fe_pairs"] == p2["n_fe_pairs"] > 0


def test_preference_ratio_of_planted_opposite_pairs():
    """Background flips (random Fe, time, sign) plus planted hops: Fe a Fe3+→Fe2+ and a nearest-neighbour Fe b
    Fe2+→Fe3+ within 0.03 ps. PR(d ≤ 4.4 Å, Δt ≤ 0.05 ps) > 1; the three other regions stay at 1."""
    ol = Olivine((2, 3, 4))
    fe_pos = ol.pos[ol.fe]
    rng = np.random.default_rng(5)
    n_fe, T = len(fe_pos), 20_000
    nb = 24_000
    frames = [rng.integers(0, T, nb)]
    fe = [rng.integers(0, n_fe, nb)]
    sign = [rng.choice([-1, 1], nb)]
    d, _ = pol.periodic_knn(fe_pos, fe_pos, ol.cell, k=2, rmax=4.4)
    _, nn = pol.periodic_knn(fe_pos, fe_pos, ol.cell, k=5, rmax=4.4)
    n_pl = 2000
    a = rng.integers(0, n_fe, n_pl)
    b = np.array([rng.choice(nn[i][(nn[i] >= 0) & (nn[i] != i)]) for i in a])
    t0 = rng.integers(0, T - 5, n_pl)
    lag = rng.integers(0, 4, n_pl)
    frames += [t0, t0 + lag]
    fe += [a, b]
    sign += [-np.ones(n_pl, int), np.ones(n_pl, int)]
    res = pol.event_pair_statistics(np.concatenate(frames), np.concatenate(fe), np.concatenate(sign), fe_pos, ol.cell,
                                    None, DT)
    pr = res["preference_ratio"]
    assert set(pr) == set(pol.PR_KEYS)
    assert pr["d_le_4.4_dt_le_0.05"] > 1.4
    for k in ("d_gt_4.4_dt_le_0.05", "d_le_4.4_dt_gt_0.05", "d_gt_4.4_dt_gt_0.05"):
        assert pr[k] == pytest.approx(1.0, abs=0.06), k
    assert d[:, 1].min() > 3.0  # nearest Fe–Fe (≈ 3.9 Å) is inside the pair range
    # the maps: the planted excess sits in the first lag bins at the nearest-neighbour distance
    opp, same = np.asarray(res["density_opposite"]), np.asarray(res["density_same"])
    row = int((d[:, 1].min() - 3.0) / 0.1)
    assert opp[row, :2].sum() > 1.4 * same[row, :2].sum()
    # no correlation at all: ≈ 1 everywhere
    res0 = pol.event_pair_statistics(frames[0], fe[0], sign[0], fe_pos, ol.cell, None, DT)
    for k, v in res0["preference_ratio"].items():
        assert v == pytest.approx(1.0, abs=0.08), k


def _li_moves(ol: Olivine, T: int):
    """Li trajectory on the 4a sites of an x = 0.5 cell with planted moves; returns positions and the truth."""
    sites = ol.li_sites()
    li_pos = ol.pos[ol.li]
    dd, occ = pol.periodic_knn(li_pos, sites, ol.cell, k=1, rmax=0.5)
    occ = occ[:, 0]
    assert (occ >= 0).all()
    vacant = sorted(set(range(len(sites))) - set(occ.tolist()))
    h = ol.cell[1, 1] / (2 * ol.info["supercell"][1])  # Li site spacing along the channels (b/2)

    def site_at(p):
        return int(pol.periodic_knn(np.atleast_2d(p), sites, ol.cell, k=1, rmax=0.5)[1][0, 0])

    pos = np.repeat(sites[occ][None], T, axis=0)
    plan = []  # (li, vacancy, its y-neighbour site, direction)
    used = set()
    for v in vacant:  # a y-neighbour Li of each vacancy hops in, and later back (some across the boundary)
        for dy in ((h, -h) if len(plan) % 2 else (-h, h)):
            s = site_at(sites[v] + [0, dy, 0])
            li = int(np.flatnonzero(occ == s)[0]) if s in occ else None
            if li is not None and li not in used:
                used.add(li)
                plan.append((li, v, s, dy))
                break
    assert len(plan) >= 4
    plan = plan[:4]
    assert any(abs(sites[s][1] - sites[v][1]) > 1.5 * h for _, v, s, _ in plan)  # one crosses the boundary
    truth = {"fast": 0, "slow": 0, "departures": []}  # departure: last frame on the old site
    for m, (li, _v, s, dy) in enumerate(plan):
        step = -np.array([0, dy, 0])  # from s to v
        f1, f2 = 30 + 20 * m, 160 + 15 * m
        if m == 0:  # slow transit: 3 frames at 1.3 Å and 3 at 1.7 Å from s, then on v
            for k in range(3):
                pos[f1 + k, li] = sites[s] + step * (1.3 / h)
                pos[f1 + 3 + k, li] = sites[s] + step * (1.7 / h)
            pos[f1 + 6:, li] = sites[s] + step
            truth["slow"] += 1
            truth["departures"].append(f1 + 2)
        else:
            pos[f1:, li] = sites[s] + step  # fast hop s -> v between two frames
            truth["fast"] += 1
            truth["departures"].append(f1 - 1)
        pos[f2:, li] = sites[s]  # fast hop back
        truth["fast"] += 1
        truth["departures"].append(f2 - 1)
    free = [i for i in range(len(occ)) if i not in used]
    pos[100:104, free[0]] += [0, 1.2, 0]  # an attempt that returns: not a hop
    # a jump to a free site of another channel (not a y-neighbour): a site change, not a hop
    def off_channel(i, v):  # min-image distance perpendicular to y
        d = sites[v] - sites[occ[i]]
        d -= np.rint(d @ np.linalg.inv(ol.cell)) @ ol.cell
        return np.hypot(d[0], d[2]) > 2.0

    li_x, v_x = next((i, v) for i in free[1:] for v in vacant if v not in {q[1] for q in plan} and off_channel(i, v))
    pos[250:, li_x] = sites[v_x]
    truth["other"] = 1
    return pos, truth


def test_li_hops_between_known_sites_count_and_rate_exact(tmp_path):
    ol = Olivine((1, 2, 2), x=0.5, seed=3, ordering="random")
    T = 300
    li_pos, truth = _li_moves(ol, T)
    st = np.full((T, ol.n_fe), 2, dtype=np.int8)
    st[:, ::2] = 3
    frames = list(ol.frames(st, noise=0.03, li_positions=li_pos))
    res = pol.analyze_polarons(frames, DT).results
    n_li = len(ol.li)
    # nearest-site assignment (default): the slow transit is a hop too
    assert res["n_li_hops"] == truth["fast"] + truth["slow"]
    assert res["li_hop_rate_per_li_per_ps"] == pytest.approx(res["n_li_hops"] / (n_li * (T - 1) * DT), rel=1e-12)
    assert res["n_li_site_changes_not_hops"] == truth["other"]
    assert res["n_li_sites"] == 16 and res["li_sites_source"].startswith("olivine")
    # with a 1 Å site radius the slow one takes 0.07 ps > 0.01 ps: not a hop
    res1 = pol.analyze_polarons(frames, DT, params={"li_site_radius_A": 1.0}).results
    assert res1["n_li_hops"] == truth["fast"] and res1["n_li_slow_transits"] == truth["slow"]
    assert res1["li_hop_rate_per_li_per_ps"] == pytest.approx(truth["fast"] / (n_li * (T - 1) * DT), rel=1e-12)
    # the same sites from a reference file holding every site (occupied or not)
    full = Olivine((1, 2, 2), x=1.0)
    ref = tmp_path / "sites.extxyz"
    from ase.io import write

    write(ref, Frame(positions=full.pos, cell=full.cell, symbols=full.symbols).to_atoms())
    res2 = pol.analyze_polarons(frames, DT, li_sites=ref).results
    assert res2["n_li_hops"] == res["n_li_hops"] and res2["li_sites_source"].startswith("file")
    # discarding the first half keeps the hops that start in the second half
    res3 = pol.analyze_polarons(frames, DT, params={"discard_fraction": 0.5}).results
    assert res3["n_frames"] == 150
    assert res3["n_li_hops"] == sum(d >= 150 for d in truth["departures"])
    assert res3["li_hop_rate_per_li_per_ps"] == pytest.approx(res3["n_li_hops"] / (n_li * 149 * DT), rel=1e-12)


def test_two_domain_cell_layer_profile(tmp_path):
    """LiFePO4 (y < 0.5) | FePO4 (y ≥ 0.5): Fe3+ fraction 0 then 1 per layer along y, and one interfacial layer
    switching at a planted rate reproduces its planted time fraction and flips."""
    ol = Olivine((1, 4, 2), interface="y:0.5", seed=1)
    fe_y = np.mod(ol.pos[ol.fe][:, 1] / ol.cell[1, 1], 1.0)
    T = 600
    rng = np.random.default_rng(7)
    st = np.where(fe_y >= 0.5, 3, 2)[None, :].repeat(T, axis=0).astype(np.int8)
    layer_y = np.round(fe_y * 8 - 0.5).astype(int)  # Fe layers at y = (2m + 1)/16
    mid = np.flatnonzero(layer_y == 3)  # the last LiFePO4 layer, next to the interface
    st[:, mid] = markov_states(T, len(mid), DT, 1.0, rng)
    res = pol.analyze_polarons(list(ol.frames(st, noise=0.03)), DT, temperature_K=600.0)
    lay = res.results["layers"]
    assert lay["axis"] == "y" and len(lay["centers_A"]) == 8 and lay["n_fe"] == [4] * 8
    planted = [float((st[:, layer_y == m] == 3).mean()) for m in range(8)]
    np.testing.assert_allclose(lay["centers_A"], (np.arange(8) + 0.5) * ol.cell[1, 1] / 8, atol=0.2)
    np.testing.assert_allclose(lay["fe3_fraction"], planted, atol=0.03)
    assert [v for m, v in enumerate(lay["fe3_fraction"]) if m != 3] == [0, 0, 0, 1, 1, 1, 1]
    rates = lay["flip_rate_per_fe_per_ps"]
    assert rates[3] > 0.3 and all(r == 0 for m, r in enumerate(rates) if m != 3)
    _, flips = pol.valence_states(np.where(st == 3, 0.0, 1.0), 0.5, 8)
    assert lay["n_flips"][3] == pytest.approx(len(flips["frame"]), abs=2)
    # Li only on the LiFePO4 side: more Li close to Fe2+ than to Fe3+
    g = res.results["li_fe_rdf"]
    r = np.asarray(g["r_A"])
    i4 = np.searchsorted(r, 4.0)
    assert g["n_li_around_Fe2"][i4] > g["n_li_around_Fe3"][i4] + 0.5
    assert len(g["g_Li_Fe2"]) == len(r) and g["n_frames"] >= 100


def test_li_off_their_sites_skip_the_hops_not_the_analysis():
    """A cell whose Li left the olivine sites (a melted cell, a poor model): flips and valences are
    still analysed, the hops are not, and the result says why."""
    ol = Olivine((1, 2, 2), x=0.5, seed=3, ordering="random")
    T = 60
    st = np.full((T, ol.n_fe), 2, dtype=np.int8)
    st[:, ::2] = 3
    v = np.random.default_rng(0).normal(size=(len(ol.li), 3))
    v *= 1.6 / np.linalg.norm(v, axis=1, keepdims=True)
    li = np.repeat((ol.pos[ol.li] + v)[None], T, axis=0)  # every Li 1.6 Å off its site, in random directions
    res = pol.analyze_polarons(list(ol.frames(st, noise=0.03, li_positions=li)), DT).results
    assert res["li_hop_rate_per_li_per_ps"] is None and res["n_li_sites"] is None
    assert "Li hops not analysed" in res["li_hops_skipped"] and any("Li hops not analysed" in w for w in res["warnings"])
    assert res["n_fe"] == ol.n_fe and res["flip_rate_per_fe_per_ps"] is not None
    with pytest.raises(pol.UserError, match="of the Li lie within 1 Å"):  # sites given by the user: still an error
        pol.olivine_li_sites(ol.cell, np.zeros(3), li[0])


def test_a_stretched_fe_o_bond_after_the_first_frame_is_data():
    """The Fe-O cutoff checks the first frame (a wrong type map); a later frame with one O of an Fe
    beyond it (a hot, poorly described frame) is analysed with a 1.5x wider search."""
    ol = Olivine((1, 2, 2), x=0.5, seed=3, ordering="random")
    T = 40
    st = np.full((T, ol.n_fe), 2, dtype=np.int8)
    frames = list(ol.frames(st, noise=0.01))
    o_idx = np.flatnonzero(np.asarray(frames[0].symbols) == "O")
    for fe in ol.fe:  # an Fe whose octahedron does not cross the cell boundary
        fe0 = frames[0].positions[fe]
        d = np.linalg.norm(frames[0].positions[o_idx] - fe0, axis=1)
        if np.sort(d)[5] < 2.4:
            break
    o = o_idx[np.argmin(d)]
    frames[20].positions[o] = fe0 + (frames[20].positions[o] - fe0) * (3.3 / d.min())  # that bond: 3.3 Å > 3.0
    res = pol.analyze_polarons(frames, DT).results
    assert res["n_frames"] == T and res["n_fe"] == ol.n_fe
    frames[0].positions[o] = frames[20].positions[o]  # the same in the first frame: refused
    with pytest.raises(pol.UserError, match="fewer than 6 O within 3.0"):
        pol.analyze_polarons(frames, DT)
