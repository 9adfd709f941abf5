"""Glass transition temperature from a cooling run.

A property y(T) (density, specific volume or enthalpy) is piecewise linear with a kink at Tg:
the liquid line above and the glass line below. :func:`glass_transition` fits a **continuous
two-line (hinge) model**

    y(T) = a + b_glass (T − Tg)   for T ≤ Tg
    y(T) = a + b_liquid (T − Tg)  for T > Tg

by least squares, searching the breakpoint Tg: for a fixed Tg the model is linear in
(a, b_glass, b_liquid), so the residual sum of squares RSS(Tg) is evaluated exactly on a grid of
candidate breakpoints between the ``min_points``-th lowest and highest temperatures, then refined by
a bounded scalar minimisation around the best grid point. The uncertainty of Tg is the half-width
of the region where RSS(Tg) ≤ RSS_min (1 + F/(n − 4)) with F the 68 % quantile of F(1, n−4)
(profile-likelihood interval of one parameter).

With ``continuous=False`` the two branches are fitted independently (split at the breakpoint)
and Tg is where the two lines cross.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mlipflow.errors import UserError


@dataclass
class TgResult:
    Tg: float
    sigma_Tg: float
    slope_glass: float
    slope_liquid: float
    intercept_at_Tg: float
    rss: float
    n_glass: int
    n_liquid: int
    continuous: bool
    T: list[float]
    y: list[float]
    quantity: str = "y"

    def predict(self, T) -> np.ndarray:
        T = np.asarray(T, dtype=float)
        return np.where(T <= self.Tg, self.intercept_at_Tg + self.slope_glass * (T - self.Tg),
                        self.intercept_at_Tg + self.slope_liquid * (T - self.Tg))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hinge(T: np.ndarray, y: np.ndarray, tb: float) -> tuple[np.ndarray, float]:
    X = np.column_stack([np.ones_like(T), np.minimum(T - tb, 0.0), np.maximum(T - tb, 0.0)])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    return coef, float(r @ r)


def _two_lines(T, y, tb):
    lo, hi = T <= tb, T > tb
    pg = np.polyfit(T[lo], y[lo], 1)
    pl = np.polyfit(T[hi], y[hi], 1)
    r = np.concatenate([y[lo] - np.polyval(pg, T[lo]), y[hi] - np.polyval(pl, T[hi])])
    return pg, pl, float(r @ r)


def glass_transition(T, y, *, min_points: int = 3, continuous: bool = True, n_grid: int = 400,
                     quantity: str = "y") -> TgResult:
    """Tg and the glass/liquid slopes from y(T) of a cooling (or heating) run (see module doc)."""
    from scipy import optimize, stats

    T = np.asarray(T, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if T.shape != y.shape:
        raise UserError(f"T and {quantity} have different lengths ({T.size} vs {y.size})")
    ok = np.isfinite(T) & np.isfinite(y)
    T, y = T[ok], y[ok]
    order = np.argsort(T)
    T, y = T[order], y[order]
    if T.size < 2 * min_points + 1:
        raise UserError(f"need at least {2 * min_points + 1} (T, {quantity}) points for a two-line fit, have {T.size}",
                        "record the property at more temperatures during cooling")
    lo_b, hi_b = T[min_points - 1], T[-min_points]
    if not hi_b > lo_b:
        raise UserError("temperatures do not span a range wide enough for two lines")
    if continuous:
        grid = np.linspace(lo_b, hi_b, n_grid)
        rss = np.array([_hinge(T, y, tb)[1] for tb in grid])
        k = int(np.argmin(rss))
        a, b = grid[max(k - 1, 0)], grid[min(k + 1, n_grid - 1)]
        opt = optimize.minimize_scalar(lambda tb: _hinge(T, y, tb)[1], bounds=(a, b), method="bounded",
                                       options={"xatol": 1e-8 * max(1.0, abs(grid[k]))})
        tg = float(opt.x) if opt.fun <= rss[k] else float(grid[k])
        coef, rmin = _hinge(T, y, tg)
        dof = T.size - 4
        if dof > 0:
            f68 = stats.f.ppf(0.6827, 1, dof)
            inside = grid[rss <= rmin * (1 + f68 / dof)]
            sig = float((inside.max() - inside.min()) / 2) if inside.size else float("nan")
            sig = max(sig, (hi_b - lo_b) / (n_grid - 1) / 2)
        else:
            sig = float("nan")
        return TgResult(Tg=tg, sigma_Tg=sig, slope_glass=float(coef[1]), slope_liquid=float(coef[2]),
                        intercept_at_Tg=float(coef[0]), rss=rmin, n_glass=int((T <= tg).sum()),
                        n_liquid=int((T > tg).sum()), continuous=True, T=T.tolist(), y=y.tolist(), quantity=quantity)
    # independent lines: try every split with ≥ min_points on each side
    best = None
    for i in range(min_points, T.size - min_points + 1):
        tb = 0.5 * (T[i - 1] + T[i])
        pg, pl, r = _two_lines(T, y, tb)
        if best is None or r < best[3]:
            best = (tb, pg, pl, r)
    tb, pg, pl, r = best
    if np.isclose(pg[0], pl[0]):
        raise UserError(f"the two branches of {quantity}(T) are parallel: no glass transition found")
    tg = float((pl[1] - pg[1]) / (pg[0] - pl[0]))
    return TgResult(Tg=tg, sigma_Tg=float("nan"), slope_glass=float(pg[0]), slope_liquid=float(pl[0]),
                    intercept_at_Tg=float(np.polyval(pg, tg)), rss=r, n_glass=int((T <= tb).sum()),
                    n_liquid=int((T > tb).sum()), continuous=False, T=T.tolist(), y=y.tolist(), quantity=quantity)
