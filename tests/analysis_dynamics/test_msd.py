"""MSD and diffusion coefficients on random walks with known D (pure numpy, no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

from mlipflow.analysis import dynamics as dyn
from mlipflow.errors import UserError


def brownian(rng, T, N, D, dt):
    """Gaussian random walk: each Cartesian step ~ N(0, 2 D dt)."""
    steps = rng.normal(0.0, np.sqrt(2 * D * dt), size=(T - 1, N, 3))
    x0 = rng.uniform(0, 20, size=(1, N, 3))
    return np.concatenate([x0, x0 + np.cumsum(steps, axis=0)], axis=0)


def langevin_walk(rng, T, N, D, dt, tau):
    """Velocity-persistent walk (Ornstein–Uhlenbeck velocity, exact discretisation of the velocity):
    MSD = 6 D [t - tau (1 - exp(-t/tau))]: ballistic (∝ t²) for t ≪ tau, diffusive for t ≫ tau."""
    s = np.sqrt(D / tau)
    a = np.exp(-dt / tau)
    v = rng.normal(0, s, size=(N, 3))
    x = np.zeros((T, N, 3))
    for t in range(1, T):
        v_new = a * v + np.sqrt(1 - a * a) * s * rng.normal(size=(N, 3))
        x[t] = x[t - 1] + 0.5 * (v + v_new) * dt
        v = v_new
    return x


def test_fft_msd_equals_direct_all_origins():
    rng = np.random.default_rng(1)
    x = brownian(rng, 300, 7, 0.3, 0.01).astype(np.float64)
    fft = dyn.msd_fft_atoms(x)
    direct = dyn.msd_direct_atoms(x)
    assert fft.shape == direct.shape == (300, 7)
    np.testing.assert_allclose(fft, direct, rtol=1e-10, atol=1e-10 * direct.max())
    # species average and per-atom output are consistent
    sp = np.array(["Na"] * 4 + ["O"] * 3)
    res = dyn.compute_msd(x, sp, 0.01, per_atom=True, chunk_atoms=3)
    np.testing.assert_allclose(res.msd["Na"], direct[:, :4].mean(axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.msd["O"], direct[:, 4:].mean(axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.per_atom, direct, rtol=1e-10, atol=1e-10 * direct.max())
    assert res.n_atoms == {"Na": 4, "O": 3}


def test_float32_input_and_chunking_give_same_msd():
    rng = np.random.default_rng(2)
    x = brownian(rng, 500, 40, 1.0, 0.05)
    a = dyn.compute_msd(x, None, 0.05, chunk_atoms=7).msd["X"]
    b = dyn.compute_msd(x, None, 0.05, chunk_atoms=64).msd["X"]
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    c = dyn.compute_msd(x.astype(np.float32), None, 0.05).msd["X"]
    np.testing.assert_allclose(c[1:], a[1:], rtol=1e-4)


def test_random_walk_known_D_within_error():
    rng = np.random.default_rng(3)
    D, dt = 0.8, 0.02  # Å²/ps, ps
    x = brownian(rng, 2000, 60, D, dt)
    res, msd = dyn.diffusion_coefficients(x, ["Na"] * 60, dt)
    r = res["Na"]
    assert r.diffusive and r.window_auto
    assert r.n_blocks == 5 and len(r.D_blocks_A2_ps) == 5
    assert r.sigma_A2_ps > 0
    assert abs(r.D_A2_ps - D) < 3 * r.sigma_A2_ps, (r.D_A2_ps, r.sigma_A2_ps)
    assert r.D_cm2_s == pytest.approx(r.D_A2_ps * 1e-4)
    d = r.to_dict()
    assert set(["D_cm2_s", "sigma", "window_ps", "D_A2_ps", "sigma_A2_ps"]) <= set(d)


def test_ballistic_start_is_excluded_and_D_recovered():
    rng = np.random.default_rng(4)
    D, dt, tau = 0.5, 0.01, 0.1
    x = langevin_walk(rng, 4000, 40, D, dt, tau)
    res, m = dyn.diffusion_coefficients(x, None, dt)
    r = res["X"]
    t, beta = dyn.loglog_slope(m.lag_ps, m.msd["X"])
    assert beta[0] > 1.8  # ballistic start (t = dt ≪ tau)
    assert r.diffusive
    assert r.window_ps[0] >= 3 * tau  # the window starts well after the ballistic regime
    assert abs(r.mean_loglog_slope - 1) < 0.15
    assert abs(r.D_A2_ps - D) < 3 * r.sigma_A2_ps, (r.D_A2_ps, r.sigma_A2_ps)
    # the analytic MSD of the OU walk is matched at the window end within 10 %
    t1 = r.window_ps[1]
    exact = 6 * D * (t1 - tau * (1 - np.exp(-t1 / tau)))
    assert m.msd["X"][int(round(t1 / dt))] == pytest.approx(exact, rel=0.1)


def test_block_error_is_calibrated():
    """Over independent replicas, (D - D_true)/σ has a spread of order one (σ neither 10x too
    small nor 10x too large)."""
    rng = np.random.default_rng(5)
    z = []
    for _ in range(30):
        x = brownian(rng, 1000, 10, 1.0, 0.01)
        r = dyn.diffusion_coefficients(x, None, 0.01, window=(0.05, 0.9))[0]["X"]
        z.append((r.D_A2_ps - 1.0) / r.sigma_A2_ps)
    z = np.asarray(z)
    assert 0.5 < np.std(z) < 2.0, z
    assert abs(np.mean(z)) < 1.0


def test_given_window_and_drift_removal():
    rng = np.random.default_rng(6)
    x = brownian(rng, 1000, 20, 0.4, 0.01)
    drift = np.linspace(0, 50, 1000)[:, None, None] * np.array([1.0, 0.0, 0.0])
    plain = dyn.compute_msd(x, None, 0.01, remove_drift=True).msd["X"]
    drifted = dyn.compute_msd(x + drift, None, 0.01, remove_drift=True).msd["X"]
    np.testing.assert_allclose(drifted, plain, rtol=1e-9, atol=1e-9)
    res, _ = dyn.diffusion_coefficients(x, None, 0.01, window=(0.1, 3.0))
    r = res["X"]
    assert r.window_ps == (0.1, 3.0) and not r.window_auto
    assert r.n_blocks == 3  # 3 ps needs blocks of ≥ 3 ps: 5 blocks of 2 ps do not fit
    with pytest.raises(UserError):
        dyn.diffusion_coefficients(x, None, 0.01, window=(0.1, 8.0))
    with pytest.raises(UserError):
        dyn.diffusion_coefficients(x, None, 0.01, window=(2.0, 1.0))


def test_bad_input_raises_user_error():
    with pytest.raises(UserError):
        dyn.compute_msd(np.zeros((10, 3)), None, 0.1)
    with pytest.raises(UserError):
        dyn.compute_msd(np.zeros((10, 3, 3)), ["Na"], 0.1)
    with pytest.raises(UserError):
        dyn.compute_msd(np.zeros((10, 3, 3)), None, 0.1, select=["Li"])
    with pytest.raises(UserError):
        dyn.compute_msd(np.zeros((10, 3, 3)), None, -1.0)


def test_single_pass_block_msds_equal_separate_blocks():
    rng = np.random.default_rng(7)
    x = brownian(rng, 503, 9, 0.5, 0.01)
    sp = ["Na"] * 5 + ["O"] * 4
    res = dyn.compute_msd(x, sp, 0.01, n_blocks=5, chunk_atoms=4)
    L = 503 // 5
    for b in range(5):
        ref = dyn.compute_msd(x[b * L:(b + 1) * L], sp, 0.01)
        for s in ("Na", "O"):
            np.testing.assert_allclose(res.blocks[s][b], ref.msd[s], rtol=1e-10, atol=1e-12)
    # diffusion_coefficients gives the same σ from a precomputed MSD without blocks (second pass)
    r1 = dyn.diffusion_coefficients(x, sp, 0.01)[0]
    r2 = dyn.diffusion_coefficients(x, sp, 0.01, msd_result=dyn.compute_msd(x, sp, 0.01))[0]
    for s in ("Na", "O"):
        assert r1[s].sigma_A2_ps == pytest.approx(r2[s].sigma_A2_ps, rel=1e-9)


def test_caged_motion_is_flagged_not_diffusive(caplog):
    """Atoms rattling in cages (Ornstein–Uhlenbeck positions around fixed sites): MSD plateaus, no
    log–log slope ≈ 1 stretch, so the result is flagged and a warning logged."""
    rng = np.random.default_rng(8)
    T, N, a, s = 2000, 20, 0.9, 0.3
    x = np.zeros((T, N, 3))
    for t in range(1, T):
        x[t] = a * x[t - 1] + s * rng.normal(size=(N, 3))
    with caplog.at_level("WARNING"):
        r = dyn.diffusion_coefficients(x, None, 0.01)[0]["X"]
    assert not r.diffusive
    assert "no diffusive regime" in caplog.text
    assert abs(r.D_A2_ps) < 0.01
