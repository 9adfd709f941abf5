"""Arrhenius fits, self van Hove functions, fast/slow ions and Tg on synthetic data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from mlipflow.analysis import dynamics as dyn
from mlipflow.analysis.thermo import glass_transition
from mlipflow.errors import UserError

from .test_msd import brownian


def test_arrhenius_recovers_known_Ea():
    rng = np.random.default_rng(10)
    Ea, D0 = 0.45, 3e-3  # eV, cm²/s
    T = np.array([600, 700, 800, 900, 1000, 1100, 1200.0])
    rel = 0.05
    D = D0 * np.exp(-Ea / (dyn.KB_EV * T)) * (1 + rel * rng.normal(size=T.size))
    res = dyn.arrhenius_fit(T, D, rel * D)
    assert abs(res.Ea_eV - Ea) < 3 * res.sigma_Ea_eV
    assert 0 < res.sigma_Ea_eV < 0.05
    assert abs(np.log(res.D0 / D0)) < 3 * res.sigma_lnD0
    assert res.n_fit == 7 and res.chi2_red is not None
    # without σ: unweighted fit, covariance scaled by the residuals
    res2 = dyn.arrhenius_fit(T, D)
    assert abs(res2.Ea_eV - Ea) < 0.05


def test_arrhenius_above_T_min_reports_deviation_below():
    Ea, D0 = 0.6, 1e-2
    T = np.array([500, 550, 600, 800, 900, 1000, 1100.0])
    D = D0 * np.exp(-Ea / (dyn.KB_EV * T))
    D[T < 700] *= 0.5  # non-Arrhenius slowdown below 700 K
    res = dyn.arrhenius_fit(T, D, 0.02 * D, T_min=700)
    assert res.Ea_eV == pytest.approx(Ea, rel=1e-6)
    assert res.n_fit == 4 and res.used == [False, False, False, True, True, True, True]
    assert [b["T"] for b in res.below] == [500, 550, 600]
    for b in res.below:
        assert b["ratio"] == pytest.approx(0.5, rel=1e-6)
        assert b["dev_sigma"] < -3
    with pytest.raises(UserError):
        dyn.arrhenius_fit(T, D, T_min=1050)
    with pytest.raises(UserError):
        dyn.arrhenius_fit(T, -D)


def test_van_hove_normalised_per_species_and_gaussian():
    rng = np.random.default_rng(11)
    dt = 0.01
    x = np.concatenate([brownian(rng, 1000, 300, 1.0, dt), brownian(rng, 1000, 5, 0.1, dt)], axis=1)
    sp = ["Na"] * 300 + ["O"] * 5
    vh = dyn.van_hove_self(x, sp, dt, lags_ps=[0.1, 1.0], n_bins=40)
    for s in ("Na", "O"):
        e = vh[s]["edges"]
        shell = 4 / 3 * np.pi * (e[1:] ** 3 - e[:-1] ** 3)
        for k in range(2):
            assert (vh[s]["G"][k] * shell).sum() == pytest.approx(1.0, abs=1e-12)
            assert vh[s]["fraction_in_range"][k] == pytest.approx(1.0)
    # Gaussian self part for Brownian motion: G_s = (4 π D t)^(-3/2) exp(-r² / 4 D t)
    r, G = vh["Na"]["r"], vh["Na"]["G"][1]
    Dt = 1.0 * 1.0
    exact = (4 * np.pi * Dt) ** -1.5 * np.exp(-r ** 2 / (4 * Dt))
    P, Pex = 4 * np.pi * r ** 2 * G, 4 * np.pi * r ** 2 * exact
    sel = Pex > 0.3 * Pex.max()
    assert np.abs(P[sel] - Pex[sel]).max() < 0.1 * Pex.max()
    # a smaller r_max: the integral is the fraction below r_max
    vh2 = dyn.van_hove_self(x, sp, dt, lags_ps=[1.0], r_max=2.0, select=["Na"])
    e = vh2["Na"]["edges"]
    frac = (vh2["Na"]["G"][0] * 4 / 3 * np.pi * (e[1:] ** 3 - e[:-1] ** 3)).sum()
    assert frac == pytest.approx(vh2["Na"]["fraction_in_range"][0]) and 0.2 < frac < 0.99
    with pytest.raises(UserError):
        dyn.van_hove_self(x, sp, dt, lags_ps=[100.0])


def test_fast_slow_classes_and_partial_rdfs():
    rng = np.random.default_rng(12)
    T, dt, L = 200, 0.01, 14.0
    n_fast, n_slow, n_o = 8, 8, 60
    fast = brownian(rng, T, n_fast, 2.0, dt)
    slow = brownian(rng, T, n_slow, 0.01, dt)
    o = np.repeat(rng.uniform(0, L, size=(1, n_o, 3)), T, axis=0)
    x = np.concatenate([fast, slow, o], axis=1)
    sp = ["Na"] * (n_fast + n_slow) + ["O"] * n_o
    disp = dyn.ion_displacements(x, 50, indices=np.arange(16))
    cls = dyn.fast_slow_classes(disp, 0.25, indices=np.arange(16))
    assert set(cls["fast"]) <= set(range(8)) and set(cls["slow"]) <= set(range(8, 16))
    assert len(cls["fast"]) == len(cls["slow"]) == 4
    cell = np.eye(3) * L
    frames = [0, 100, 199]
    # ring centres: a "6-ring" 1.0 Å from every ion, a "<6" ring 3 Å away
    rings = []
    for t in frames:
        ions = x[t, :16]
        c6 = ions + np.array([1.0, 0, 0])
        c4 = ions + np.array([0, 3.0, 0])
        rings.append((np.vstack([c6, c4]), np.array([6] * 16 + [4] * 16)))
    out = dyn.fast_slow_rdfs(x, sp, cell, dt, 0.5, ion="Na", ring_centres=rings, frames=frames, r_max=5.0, dr=0.1)
    assert sorted(out["classes"]["fast"]) == sorted(cls["fast"].tolist())
    for c in ("fast", "slow"):
        g = out["rdf"][c]
        assert set(g) == {"Na-Na", "Na-O", "ring<6", "ring6-7", "ring>7"}
        r6 = g["ring6-7"]
        assert r6["r"][np.argmax(r6["g"])] == pytest.approx(1.05, abs=0.051)
        r4 = g["ring<6"]
        assert r4["r"][np.argmax(r4["g"])] == pytest.approx(3.05, abs=0.051)
        assert np.all(g["ring>7"]["g"] == 0)
        # Na–O of ideal-gas O: g ≈ 1 on average at 2–5 Å
        sel = (g["Na-O"]["r"] > 2) & (g["Na-O"]["r"] < 5)
        assert 0.6 < g["Na-O"]["g"][sel].mean() < 1.4
    assert dyn.ring_size_group(5) == "<6" and dyn.ring_size_group(7) == "6-7" and dyn.ring_size_group(8) == ">7"


def test_tg_two_line_fit_recovers_breakpoint():
    rng = np.random.default_rng(13)
    Tg, a, bg, bl = 780.0, 2.60, -6e-5, -2.2e-4
    T = np.linspace(1500, 300, 49)
    rho = np.where(T <= Tg, a + bg * (T - Tg), a + bl * (T - Tg)) + rng.normal(0, 1.5e-3, T.size)
    res = glass_transition(T, rho, quantity="density")
    assert abs(res.Tg - Tg) < max(3 * res.sigma_Tg, 30)
    assert res.sigma_Tg < 100
    assert res.slope_glass == pytest.approx(bg, rel=0.3)
    assert res.slope_liquid == pytest.approx(bl, rel=0.1)
    assert res.n_glass + res.n_liquid == T.size
    # exact data: exact breakpoint, both line variants
    exact = np.where(T <= Tg, a + bg * (T - Tg), a + bl * (T - Tg))
    r1 = glass_transition(T, exact)
    assert r1.Tg == pytest.approx(Tg, abs=1e-3)
    r2 = glass_transition(T, exact, continuous=False)
    assert r2.Tg == pytest.approx(Tg, abs=1e-6)
    with pytest.raises(UserError):
        glass_transition(T[:5], exact[:5])
