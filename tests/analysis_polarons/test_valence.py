"""Valence classifier, filter, minimum state duration, flip rates and their Arrhenius fit, on bond-length
series with planted truth (two-state Markov switching, noise, short excursions)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from mlipflow.analysis import polarons as pol
from mlipflow.analysis.dynamics import KB_EV

from .synth import Olivine, bond_series, expected_observed_rate, markov_states

DT = 0.01  # ps between frames


@pytest.fixture(scope="module")
def geometry():
    """Fe positions of a 2x4x6 olivine cell (192 Fe) for the pair and layer parts."""
    ol = Olivine((2, 4, 6))
    return ol.pos[ol.fe], ol.cell


def stats(bonds, geometry, **kw):
    pos, cell = geometry
    n = bonds.shape[1]
    params = pol.PolaronParams(**kw.pop("params", {}))
    return pol.polaron_statistics(bonds, DT, fe_positions=pos[:n], cell=cell, params=params, **kw)


def test_gmm_recovers_mixture_boundary_and_bayes_error():
    rng = np.random.default_rng(0)
    m, s, w = (2.08, 2.16), (0.015, 0.018), (0.3, 0.7)
    n = 200_000
    k = rng.random(n) < w[0]
    x = np.where(k, rng.normal(m[0], s[0], n), rng.normal(m[1], s[1], n))
    fit = pol.fit_valence_gmm(x, random_state=0)
    assert fit.means_A == pytest.approx(m, abs=5e-4)
    assert fit.sigmas_A == pytest.approx(s, abs=5e-4)
    assert fit.weights == pytest.approx(w, abs=5e-3)
    # boundary: where the weighted densities are equal (dense grid between the means)
    grid = np.linspace(m[0], m[1], 200_001)
    diff = w[0] * norm.pdf(grid, m[0], s[0]) - w[1] * norm.pdf(grid, m[1], s[1])
    b_true = grid[np.argmin(np.abs(diff))]
    assert fit.boundary_A == pytest.approx(b_true, abs=1e-3)
    # Bayes error = ∫ min(w1 N1, w2 N2) dx for the true mixture
    xx = np.linspace(1.9, 2.35, 400_001)
    be_true = np.trapezoid(np.minimum(w[0] * norm.pdf(xx, m[0], s[0]), w[1] * norm.pdf(xx, m[1], s[1])), xx)
    assert fit.bayes_error == pytest.approx(be_true, abs=2e-3)
    again = pol.fit_valence_gmm(x, random_state=0)
    assert again.to_dict() == fit.to_dict()  # seeded: deterministic
    assert pol.fit_valence_gmm(x, boundary_A=2.1).boundary_A == 2.1


def test_markov_flip_rate_recovered(geometry):
    """Symmetric switching at 0.5 / ps: the detected flips equal those of the clean planted states under the
    same 0.08 ps rule (±1 %), and the rate equals the memoryless expectation within 3 σ."""
    rng = np.random.default_rng(1)
    k = 0.5
    st = markov_states(10_000, 192, DT, k, rng)
    res = stats(bond_series(st, rng, noise=0.02), geometry, temperature_K=500.0).results
    _, planted = pol.valence_states(np.where(st == 3, 0.0, 1.0), 0.5, 8)
    assert res["n_flips"] == pytest.approx(len(planted["frame"]), rel=0.01)
    expect = expected_observed_rate(k, 0.08)
    sig = res["flip_rate_sigma_per_fe_per_ps"]
    assert 0 < sig < 0.05 * expect
    assert abs(res["flip_rate_per_fe_per_ps"] - expect) < 3 * max(sig, res["flip_rate_poisson_sigma_per_fe_per_ps"])
    assert res["fe3_fraction"] == pytest.approx((st == 3).mean(), abs=0.01)
    assert res["n_flips_oxidation"] + res["n_flips_reduction"] == res["n_flips"]
    assert res["gmm"]["means_A"][0] < res["gmm"]["boundary_A"] < res["gmm"]["means_A"][1]
    assert res["pairs"]["preference_ratio"]["d_gt_4.4_dt_gt_0.05"] == pytest.approx(1.0, abs=0.05)


def test_arrhenius_of_flip_rates_recovers_A_and_Ea(geometry):
    """Rates A exp(-Ea/kT) (paper's bulk values, A = 13.9 / ps, Ea = 0.131 eV) at four temperatures low
    enough that the 0.08 ps rule removes < 3 % of the flips."""
    A, Ea = 13.9, 0.131
    rng = np.random.default_rng(2)
    runs = []
    for T in (250.0, 280.0, 310.0, 340.0):
        k = A * np.exp(-Ea / (KB_EV * T))
        st = markov_states(10_000, 192, DT, k, rng)
        runs.append(stats(bond_series(st, rng, noise=0.02), geometry, temperature_K=T).results)
    fit = pol.rate_arrhenius(runs, "flip")
    assert fit["n_points"] == 4
    assert 0 < fit["Ea_sigma_eV"] < 0.02
    assert abs(fit["Ea_eV"] - Ea) < 3 * fit["Ea_sigma_eV"]
    assert abs(np.log(fit["A_per_ps"] / A)) < 3 * fit["lnA_sigma"]


def test_noise_below_filter_threshold_is_not_a_flip(geometry):
    """White noise and a 20 THz vibration that cross the boundary in the raw series: no flips after the
    filter; without filter and minimum duration the same series would give many."""
    rng = np.random.default_rng(3)
    T, n = 5000, 32
    st = np.where(np.arange(n) % 2 == 0, 3, 2)[None, :].repeat(T, axis=0)
    t = np.arange(T)[:, None] * DT
    vib = 0.05 * np.sin(2 * np.pi * t / 0.05 + rng.uniform(0, 2 * np.pi, n))
    bonds = bond_series(st, rng, noise=0.02) + vib.astype(np.float32)
    res = stats(bonds, geometry, params={"boundary_A": 2.12}).results
    assert res["n_flips"] == 0
    assert res["fe3_fraction"] == 0.5 and res["flip_rate_per_fe_per_ps"] == 0.0
    raw = stats(bonds, geometry, params={"boundary_A": 2.12, "filter_sigma_ps": 0.0, "min_state_ps": 0.0}).results
    assert raw["n_flips"] > 1000


def test_states_shorter_than_min_duration_do_not_count(geometry):
    rng = np.random.default_rng(4)
    T, n = 4000, 16
    base = np.where(np.arange(n) < n // 2, 3, 2).astype(np.int8)
    st = base[None, :].repeat(T, axis=0)
    short_starts = [(100 + 190 * m, m % n) for m in range(20)]  # 0.05 ps excursions
    for f0, fe in short_starts:
        st[f0:f0 + 5, fe] = 5 - base[fe]
    long_starts = [(150 + 370 * m, (3 * m + 1) % n) for m in range(10)]  # 0.12 ps excursions
    for f0, fe in long_starts:
        st[f0:f0 + 12, fe] = 5 - base[fe]
    bonds = bond_series(st, rng, noise=0.01)
    res = stats(bonds, geometry)
    r = res.results
    assert r["n_flips"] == 2 * len(long_starts)  # each long excursion: out and back
    assert r["n_flips_oxidation"] == r["n_flips_reduction"] == len(long_starts)
    st_found = res.states
    for f0, fe in long_starts:
        assert st_found[f0 + 6, fe] == 5 - base[fe]
    for f0, fe in short_starts:
        assert st_found[f0 + 2, fe] == base[fe]
    # the short ones do survive the filter: without the 0.08 ps rule they would be flips
    loose = stats(bonds, geometry, params={"min_state_ps": 0.0}).results
    assert loose["n_flips"] == 2 * (len(long_starts) + len(short_starts))


def test_valence_states_rules_exactly():
    # one Fe: 10 frames Fe2+, 3 Fe3+ (short), 10 Fe2+, 10 Fe3+, 2 Fe2+ (short), 10 Fe3+; min 8 frames
    seq = [2] * 10 + [3] * 3 + [2] * 10 + [3] * 10 + [2] * 2 + [3] * 10
    x = np.where(np.array(seq) == 3, 0.0, 1.0)[:, None]
    states, flips = pol.valence_states(x, 0.5, 8)
    assert flips["frame"].tolist() == [23] and flips["sign"].tolist() == [1]
    assert states[:, 0].tolist() == [2] * 23 + [3] * 22
    # no run long enough: the frame-by-frame class is kept, no flips
    states, flips = pol.valence_states(x, 0.5, 50)
    assert len(flips["frame"]) == 0 and states[:, 0].tolist() == seq


def test_time_axis_checks():
    dt, info = pol.resolve_frame_interval(0.01, [0, 5, 10], [None] * 3)
    assert dt == 0.01 and info["step_interval"] == 5
    assert pol.resolve_frame_interval(None, [0, 5], [0.0, 0.01])[0] == pytest.approx(0.01)
    from mlipflow.errors import UserError

    with pytest.raises(UserError, match="unknown"):
        pol.resolve_frame_interval(None, [0, 5], [None, None])
    with pytest.raises(UserError, match="disagrees"):
        pol.resolve_frame_interval(0.02, [0, 5], [0.0, 0.01])
    with pytest.raises(UserError, match="evenly"):
        pol.resolve_frame_interval(0.01, [0, 5, 12], [None] * 3)
    with pytest.raises(UserError, match="minimum state"):
        pol.polaron_statistics(np.full((10, 4), 2.1, np.float32), 10.0, fe_positions=np.zeros((4, 3)),
                               cell=np.eye(3) * 10)
