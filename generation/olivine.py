"""Olivine Li_xFePO4 supercells: Li/vacancy orderings, Fe2+/Fe3+ polarons, LiFePO4/FePO4 interface.

Structure: space group Pnma (No. 62), standard setting, Li channels along b (y).
Lattice parameters a = 10.2362, b = 5.97076, c = 4.65492 Å (the values used by the paper's
workflow). Fractional coordinates of the asymmetric unit are those of triphylite LiFePO4 from
the single-crystal X-ray study of Streltsov, Belokoneva, Tsirelson & Hansen, Acta Cryst. B49
(1993) 147-153 (as commonly reproduced, e.g. in ICSD-derived olivine models):

    Li  4a  0        0        0
    Fe  4c  0.28222  0.25     0.97472
    P   4c  0.09486  0.25     0.41820
    O1  4c  0.09678  0.25     0.74279
    O2  4c  0.45710  0.25     0.20602
    O3  8d  0.16558  0.04646  0.28492

(Values recalled offline; the resulting bond lengths — P–O 1.52–1.56 Å, Fe–O 2.06–2.25 Å,
Li–O 2.1–2.2 Å at these lattice parameters — are checked in tests/generation.)

Per-site properties: ``oxidation_state`` (Li +1, Fe +2/+3, P +5, O -2) and ``magmom`` (initial
moments: Fe2+ 4 µB, Fe3+ 5 µB, others 0).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mlipflow.errors import UserError

LATTICE = (10.2362, 5.97076, 4.65492)
ASYMMETRIC_UNIT = [
    ("Li", (0.0, 0.0, 0.0)),
    ("Fe", (0.28222, 0.25, 0.97472)),
    ("P", (0.09486, 0.25, 0.41820)),
    ("O", (0.09678, 0.25, 0.74279)),
    ("O", (0.45710, 0.25, 0.20602)),
    ("O", (0.16558, 0.04646, 0.28492)),
]
OXIDATION = {"Li": 1, "Fe": 2, "P": 5, "O": -2}
MAGMOM = {2: 4.0, 3: 5.0}
AXES = {"x": 0, "y": 1, "z": 2, "a": 0, "b": 1, "c": 2}


def olivine_unit_cell(lattice: Sequence[float] = LATTICE):
    """The 28-atom LiFePO4 olivine cell (Pnma) with oxidation_state and magmom site properties."""
    from pymatgen.core import Lattice, Structure

    a, b, c = (float(v) for v in lattice)
    st = Structure.from_spacegroup(
        "Pnma", Lattice.orthorhombic(a, b, c), [s for s, _ in ASYMMETRIC_UNIT], [p for _, p in ASYMMETRIC_UNIT]
    )
    order = {"Li": 0, "Fe": 1, "P": 2, "O": 3}
    st = st.get_sorted_structure(key=lambda site: (order[site.specie.symbol], *np.round(site.frac_coords, 6)))
    _set_states(st, [OXIDATION[s.specie.symbol] for s in st])
    return st


def _set_states(st, oxi: Sequence[int]) -> None:
    st.add_site_property("oxidation_state", [int(q) for q in oxi])
    st.add_site_property(
        "magmom", [MAGMOM.get(int(q), 0.0) if s.specie.symbol == "Fe" else 0.0 for s, q in zip(st, oxi)]
    )


def _parse_supercell(supercell) -> tuple[int, int, int]:
    if isinstance(supercell, str):
        supercell = [p for p in supercell.replace("x", ",").split(",") if p.strip()]
    try:
        sc = tuple(int(v) for v in supercell)
    except (TypeError, ValueError):
        raise UserError(f"cannot read supercell {supercell!r}", "give three integers, e.g. --supercell 1,2,2") from None
    if len(sc) != 3 or min(sc) < 1:
        raise UserError(f"supercell must be three positive integers (got {supercell!r})", "e.g. --supercell 1,2,2")
    return sc  # type: ignore[return-value]


def parse_interface(interface) -> tuple[int, float] | None:
    """``"y:0.5"`` or ``("y", 0.5)`` -> (axis index, fraction)."""
    if interface is None or interface == "":
        return None
    if isinstance(interface, str):
        if ":" not in interface:
            raise UserError(f"cannot read interface {interface!r}", "write it as axis:fraction, e.g. --interface y:0.5")
        ax, frac = interface.split(":", 1)
    else:
        ax, frac = interface
    ax = str(ax).strip().lower()
    if ax not in AXES:
        raise UserError(f"unknown interface axis {ax!r}", "use x, y or z, e.g. --interface y:0.5")
    try:
        f = float(frac)
    except ValueError:
        raise UserError(f"cannot read interface fraction {frac!r}", "give a number in (0, 1), e.g. y:0.5") from None
    if not 0.0 < f < 1.0:
        raise UserError(f"interface fraction {f} is outside (0, 1)", "give a fraction such as y:0.5")
    return AXES[ax], f


def _plane_indices(frac_coord: np.ndarray, nplanes: int) -> np.ndarray:
    """Index of the lattice plane (0..nplanes-1) of each Li along one axis (Li planes at k/nplanes)."""
    return np.rint(np.mod(frac_coord, 1.0) * nplanes).astype(int) % nplanes


def _evenly_spread(n_total: int, n_pick: int) -> list[int]:
    """n_pick of range(n_total) spread evenly, starting from the second (alternating for half)."""
    if n_pick <= 0:
        return []
    if n_pick >= n_total:
        return list(range(n_total))
    r = n_pick / n_total
    return [k for k in range(n_total) if np.floor((k + 1) * r + 1e-9) > np.floor(k * r + 1e-9)]


def _pbc_vectors(frac_from: np.ndarray, frac_to: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Minimum-image Cartesian vectors (len(from), len(to), 3) for an orthorhombic cell."""
    df = frac_to[None, :, :] - frac_from[:, None, :]
    df -= np.rint(df)
    return df @ lattice


def olivine_supercell(
    supercell: Sequence[int] | str = (1, 2, 2),
    x: float = 1.0,
    ordering: str | Sequence[int] = "random",
    polarons: str | None = "random",
    seed: int | None = 0,
    interface: str | tuple | None = None,
    rattle: float = 0.0,
    rattle_mode: str = "normal",
    contraction: float | None = None,
    lattice: Sequence[float] = LATTICE,
) -> tuple[Any, dict[str, Any]]:
    """An olivine Li_xFePO4 supercell and a description of what was done.

    - ``ordering``: which Li are removed to reach ``x``: ``"random"`` (seeded), ``"x"`` (Li of
      alternating yz planes, i.e. planes normal to a), ``"y"`` (alternating xz planes, normal
      to b), or an explicit list of indices into the Li sites of the supercell (in site order).
      For "x"/"y" the planes removed are spread evenly; x is rounded to what whole planes allow
      (``x_actual`` in the info).
    - ``polarons``: which Fe become Fe3+ (as many as Li removed): ``"random"``,
      ``"near-vacancy"`` (one-to-one, closest Fe–vacancy pairs first) or None (no polarons: the
      cell is then charged, an error unless x = 1).
    - ``interface``: ``"y:0.5"`` builds a two-phase cell instead: Li with fractional
      coordinate < 0.5 along y kept (LiFePO4), the rest removed with all Fe on that side Fe3+
      (FePO4). ``x``/``ordering``/``polarons`` are then ignored.
    - ``contraction``: scale the Fe3+–O bonds of each Fe3+O6 octahedron by this factor (e.g. 0.97).
    - ``rattle``: random displacement amplitude (Å): ``"normal"`` — each Cartesian component
      ~ N(0, rattle) (ASE's convention); ``"uniform"`` — random direction, length uniform in [0, rattle].
    """
    sc = _parse_supercell(supercell)
    rng = np.random.default_rng(seed)
    st = olivine_unit_cell(lattice)
    st.make_supercell(sc)
    lat = st.lattice.matrix
    symbols = np.array([s.specie.symbol for s in st])
    li_idx = np.flatnonzero(symbols == "Li")
    fe_idx = np.flatnonzero(symbols == "Fe")
    o_idx = np.flatnonzero(symbols == "O")
    n_li = len(li_idx)
    frac = st.frac_coords
    info: dict[str, Any] = {"supercell": list(sc), "lattice": [float(v) for v in lattice], "seed": seed,
                            "x_target": float(x), "ordering": ordering if isinstance(ordering, str) else "explicit",
                            "polarons": polarons, "interface": None, "rattle": float(rattle),
                            "rattle_mode": rattle_mode, "contraction": contraction}

    iface = parse_interface(interface)
    if iface is not None:
        ax, f = iface
        remove_li = li_idx[np.mod(frac[li_idx, ax], 1.0) >= f - 1e-9]
        fe3 = fe_idx[np.mod(frac[fe_idx, ax], 1.0) >= f - 1e-9]
        if len(fe3) != len(remove_li):
            raise UserError(
                f"interface at {'xyz'[ax]}:{f} cuts the cell unevenly ({len(remove_li)} Li removed, "
                f"{len(fe3)} Fe on the FePO4 side)",
                "choose a fraction that falls between Li/Fe planes, e.g. a multiple of 1/(supercell along that axis)",
            )
        info["interface"] = {"axis": "xyz"[ax], "fraction": f,
                             "lifepo4_side": f"{'xyz'[ax]} < {f}", "fepo4_side": f"{'xyz'[ax]} >= {f}"}
        info["ordering"] = "interface"
        info["polarons"] = "fepo4-side"
    else:
        if not 0.0 <= x <= 1.0:
            raise UserError(f"x = {x} is outside [0, 1]", "give the Li content x of Li_xFePO4 in [0, 1]")
        n_remove = int(round((1.0 - x) * n_li))
        if isinstance(ordering, str):
            mode = ordering.lower()
            if mode == "random":
                remove_li = np.sort(rng.choice(li_idx, size=n_remove, replace=False))
            elif mode in ("x", "y"):
                ax = AXES[mode]
                nplanes = 2 * sc[ax]  # Li planes at 0 and 1/2 of each unit cell along a and b
                planes = _plane_indices(frac[li_idx, ax], nplanes)
                per_plane = n_li // nplanes
                n_planes_rm = int(round(n_remove / per_plane))
                chosen = _evenly_spread(nplanes, n_planes_rm)
                remove_li = li_idx[np.isin(planes, chosen)]
                info["removed_planes"] = {"axis": mode, "nplanes": nplanes, "removed": chosen}
            else:
                raise UserError(f"unknown Li ordering {ordering!r}",
                                "use random, x, y or an explicit list of Li site indices")
        else:
            sel = np.asarray(list(ordering), dtype=int)
            if sel.size and (sel.min() < 0 or sel.max() >= n_li or len(set(sel.tolist())) != sel.size):
                raise UserError(f"explicit Li sites must be distinct indices in 0..{n_li - 1}",
                                "give indices into the Li sites of the supercell")
            remove_li = li_idx[sel]
        n_remove = len(remove_li)
        if polarons is None:
            if n_remove:
                raise UserError(f"{n_remove} Li removed but no polarons seeded: the cell would be charged",
                                "use --polarons random or near-vacancy")
            fe3 = np.array([], dtype=int)
        elif polarons == "random":
            fe3 = np.sort(rng.choice(fe_idx, size=n_remove, replace=False))
        elif polarons in ("near-vacancy", "near_vacancy", "nearest"):
            fe3 = _near_vacancy(frac[remove_li], frac[fe_idx], lat, fe_idx, rng)
        else:
            raise UserError(f"unknown polaron placement {polarons!r}", "use random or near-vacancy")

    oxi = np.array([OXIDATION[s] for s in symbols])
    oxi[fe3] = 3
    _set_states(st, oxi.tolist())
    vacancy_frac = frac[remove_li].copy()

    if contraction is not None and len(fe3):
        _contract_octahedra(st, fe3, o_idx, float(contraction))

    st.remove_sites(sorted(int(i) for i in remove_li))
    kept_li = [i for i in li_idx if i not in set(remove_li.tolist())]
    if rattle:
        st = _rattle(st, float(rattle), rattle_mode, rng)

    n_li_left = n_li - len(remove_li)
    info.update({
        "x_actual": n_li_left / n_li if n_li else 0.0,
        "n_li_removed": int(len(remove_li)),
        "removed_li_sites": [int(np.searchsorted(li_idx, i)) for i in remove_li],
        "vacancy_frac_coords": vacancy_frac.tolist(),
        "fe3_sites": [int(i - len(remove_li[remove_li < i])) for i in fe3],  # indices in the returned structure
        "n_fe3": int(len(fe3)),
        "natoms": len(st),
        "formula": st.composition.formula.replace(" ", ""),
        "charge": int(sum(st.site_properties["oxidation_state"])),
        "kept_li": len(kept_li),
    })
    if info["charge"] != 0:  # pragma: no cover - guarded by construction
        raise RuntimeError(f"olivine cell is not neutral ({info['charge']:+d})")
    return st, info


#: The LixFePO4 paper's named configurations: name -> olivine_supercell arguments. D1-D3 are
#: seeded disordered Li/vacancy arrangements at x = 0.5, x-order removes alternating yz planes
#: (normal to a), y-order alternating xz planes (normal to b); "interface" is the LiFePO4/FePO4
#: two-phase cell split along y.
NAMED_CONFIGURATIONS: dict[str, dict[str, Any]] = {
    "D1": {"x": 0.5, "ordering": "random", "seed": 1},
    "D2": {"x": 0.5, "ordering": "random", "seed": 2},
    "D3": {"x": 0.5, "ordering": "random", "seed": 3},
    "x-order": {"x": 0.5, "ordering": "x", "seed": 0},
    "y-order": {"x": 0.5, "ordering": "y", "seed": 0},
    "interface": {"interface": "y:0.5", "seed": 0},
}


def named_configuration(name: str, supercell: Sequence[int] | str = (1, 2, 2), seed: int = 0,
                        **overrides: Any) -> tuple[Any, dict[str, Any]]:
    """One of :data:`NAMED_CONFIGURATIONS` for any supercell (``seed`` is added to the name's own
    seed; polarons placed at random, seeded). ``overrides``: other :func:`olivine_supercell` arguments."""
    if name not in NAMED_CONFIGURATIONS:
        raise UserError(f"unknown configuration {name!r}", f"use one of {', '.join(NAMED_CONFIGURATIONS)}")
    args = {"polarons": "random", **NAMED_CONFIGURATIONS[name], **overrides}
    args["seed"] = int(args.get("seed", 0)) + int(seed)
    st, info = olivine_supercell(supercell, **args)
    info["configuration"] = name
    return st, info


def random_configurations(n: int, supercell: Sequence[int] | str = (1, 2, 2), x_values: Sequence[float] | None = None,
                          seed: int = 0, rattle: float = 0.0, max_tries: int = 50) -> list[tuple[Any, dict[str, Any]]]:
    """``n`` distinct supercells with random Li, vacancy and polaron configurations (the LixFePO4
    paper's 126 relaxation starts): cell ``k`` takes x from ``x_values`` in turn (default: every
    multiple of 1/n_Li strictly between 0 and 1; x = 0 and 1 have one configuration each) and seed ``seed + k`` (later seeds when a configuration repeats
    an earlier one: same Li sites and same Fe3+ sites). ``rattle``: normal displacements (Å)."""
    if n < 1:
        raise UserError(f"n = {n}: at least one configuration is needed", "give n >= 1")
    sc = _parse_supercell(supercell)
    n_li = 4 * sc[0] * sc[1] * sc[2]
    xs = [float(v) for v in (x_values if x_values else [k / n_li for k in range(1, n_li)])]
    seen: set[tuple] = set()
    out = []
    next_seed = int(seed)
    for k in range(n):
        x = xs[k % len(xs)]
        for _ in range(max_tries):
            st, info = olivine_supercell(sc, x=x, ordering="random", polarons="random", seed=next_seed, rattle=rattle)
            next_seed += 1
            key = (round(info["x_actual"], 6), tuple(info["removed_li_sites"]), tuple(info["fe3_sites"]))
            if key not in seen:
                break
        else:
            raise UserError(f"no new configuration at x = {x} in a {'x'.join(map(str, sc))} supercell after "
                            f"{max_tries} tries (asked for {n} cells in all)",
                            "ask for fewer cells at that x (x = 0 and x = 1 have a single configuration), "
                            "other x values, or a larger supercell")
        seen.add(key)
        info.update({"configuration": f"random-{k}", "index": k})
        out.append((st, info))
    return out


def _near_vacancy(vac_frac, fe_frac, lat, fe_idx, rng) -> np.ndarray:
    """One Fe per vacancy: all (vacancy, Fe) pairs by distance, greedy one-to-one (ties: seeded)."""
    if len(vac_frac) == 0:
        return np.array([], dtype=int)
    d = np.linalg.norm(_pbc_vectors(vac_frac, fe_frac, lat), axis=-1)
    jitter = rng.random(d.shape) * 1e-9  # seeded tie-break
    order = np.argsort((d + jitter).ravel(), kind="stable")
    used_v, used_f, chosen = set(), set(), []
    for flat in order:
        v, f = divmod(int(flat), d.shape[1])
        if v in used_v or f in used_f:
            continue
        used_v.add(v)
        used_f.add(f)
        chosen.append(fe_idx[f])
        if len(chosen) == len(vac_frac):
            break
    return np.sort(np.array(chosen, dtype=int))


def _contract_octahedra(st, fe3, o_idx, factor: float, n_neighbors: int = 6) -> None:
    """Move the 6 nearest O of each Fe3+ so the Fe–O bonds are scaled by ``factor``."""
    if not 0.5 < factor < 1.5:
        raise UserError(f"contraction factor {factor} is implausible", "use a value close to 1, e.g. 0.97")
    lat = st.lattice.matrix
    frac = st.frac_coords
    vec = _pbc_vectors(frac[fe3], frac[o_idx], lat)  # (nfe3, nO, 3) Fe -> O
    dist = np.linalg.norm(vec, axis=-1)
    disp = np.zeros((len(o_idx), 3))
    for k in range(len(fe3)):
        nn = np.argsort(dist[k])[:n_neighbors]
        disp[nn] += (factor - 1.0) * vec[k, nn]
    new_cart = st.cart_coords[o_idx] + disp
    for j, i in enumerate(o_idx):
        if np.any(disp[j]):
            st.replace(int(i), st[int(i)].species, new_cart[j], coords_are_cartesian=True,
                       properties=st[int(i)].properties)


def _rattle(st, amplitude: float, mode: str, rng: np.random.Generator) -> None:
    n = len(st)
    if mode == "normal":
        d = rng.normal(scale=amplitude, size=(n, 3))
    elif mode == "uniform":
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        d = v * rng.uniform(0.0, amplitude, size=(n, 1))
    else:
        raise UserError(f"unknown rattle mode {mode!r}", "use normal or uniform")
    from pymatgen.core import Structure

    return Structure(st.lattice, st.species, st.cart_coords + d, coords_are_cartesian=True, to_unit_cell=True,
                     site_properties=st.site_properties)
