"""Elastic constants by stepwise strains and stress–strain regression.

Method (as LAMMPS' ``examples/ELASTIC``, extended to many strain steps): starting from the
structure relaxed at fixed cell, each of the six Voigt strain components j (1 xx, 2 yy, 3 zz,
4 yz, 5 xz, 6 xy; shear as engineering strain γ = 2ε) is increased in ``steps`` steps of
``strain`` (default 20 × 1e-4), then decreased likewise from the reference; at every step the
atoms are relaxed at fixed cell (``ase.optimize``) starting from the previous step (quasi-static
deformation, which matters for glasses) and the stress σ_i is recorded. C_ij is the least-squares
slope of σ_i against ε_j over the 2·steps + 1 points (its standard error is reported).

Stress sign: tensile positive (ASE convention; LAMMPS pressure p = −σ). Units: GPa.

Isotropic averages (LAMMPS' ELASTIC convention): C11 = ⟨C11, C22, C33⟩, C12 = ⟨C12, C13, C23⟩,
C44 = ⟨C44, C55, C66⟩ (of the symmetrised matrix). Then, for an isotropic solid,
bulk K = (C11 + 2 C12)/3, shear G = C44 (also (C11 − C12)/2 reported; equal if isotropic),
Young E = (C11 − C12)(C11 + 2 C12)/(C11 + C12), Poisson ν = C12/(C11 + C12).
Voigt–Reuss–Hill averages of the full matrix are reported too (valid for any symmetry).

:func:`lammps_elastic_deck` renders the same protocol as one LAMMPS input file for clusters
(any pair style); :func:`parse_lammps_elastic` reads its output back into
:func:`elastic_from_stress_strain`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

from mlipflow.errors import UserError

log = logging.getLogger(__name__)

VOIGT = ("xx", "yy", "zz", "yz", "xz", "xy")
_VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def strain_matrix(j: int, eps: float) -> np.ndarray:
    """Symmetric small-strain tensor for Voigt component ``j`` (0-based), engineering shear ``eps``."""
    e = np.zeros((3, 3))
    a, b = _VOIGT_PAIRS[j]
    if a == b:
        e[a, a] = eps
    else:
        e[a, b] = e[b, a] = eps / 2
    return e


@dataclass
class ElasticResult:
    C: list[list[float]]                 # 6x6 GPa (raw regression, rows σ_i, columns ε_j)
    C_sym: list[list[float]]             # symmetrised
    C_err: list[list[float]]             # standard errors of the slopes
    C11: float
    C12: float
    C44: float
    bulk_modulus_GPa: float
    shear_modulus_GPa: float            # = C44 (isotropic average)
    shear_modulus_c11_c12_GPa: float    # (C11 - C12)/2
    youngs_modulus_GPa: float
    poisson_ratio: float
    zener_anisotropy: float
    K_VRH: float
    G_VRH: float
    strains: list[float]
    stresses: dict[str, list[list[float]]]  # direction -> (n, 6) stress in GPa
    parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _slope_and_error(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS slopes of every column of y against x, with standard errors."""
    X = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ coef
    dof = max(len(x) - 2, 1)
    s2 = (r ** 2).sum(axis=0) / dof
    sxx = ((x - x.mean()) ** 2).sum()
    return coef[1], np.sqrt(s2 / sxx)


def elastic_from_stress_strain(data: dict[int, tuple[Sequence[float], np.ndarray]],
                               parameters: dict[str, Any] | None = None) -> ElasticResult:
    """C_ij and moduli from ``{j: (strains, stresses (n, 6) GPa)}`` for the six Voigt directions j=0..5."""
    if sorted(data) != list(range(6)):
        raise UserError(f"need stress–strain data for the 6 strain directions, have {sorted(data)}")
    C = np.zeros((6, 6))
    E = np.zeros((6, 6))
    stresses = {}
    strains = None
    for j in range(6):
        eps, sig = np.asarray(data[j][0], float), np.asarray(data[j][1], float)
        if eps.size < 2 or np.ptp(eps) == 0:
            raise UserError(f"direction {VOIGT[j]}: need at least two distinct strains")
        C[:, j], E[:, j] = _slope_and_error(eps, sig)
        stresses[VOIGT[j]] = sig.tolist()
        strains = eps.tolist()
    Cs = 0.5 * (C + C.T)
    c11 = float(np.mean([Cs[0, 0], Cs[1, 1], Cs[2, 2]]))
    c12 = float(np.mean([Cs[0, 1], Cs[0, 2], Cs[1, 2]]))
    c44 = float(np.mean([Cs[3, 3], Cs[4, 4], Cs[5, 5]]))
    K = (c11 + 2 * c12) / 3
    young = (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)
    nu = c12 / (c11 + c12)
    # Voigt-Reuss-Hill
    Kv = (Cs[0, 0] + Cs[1, 1] + Cs[2, 2] + 2 * (Cs[0, 1] + Cs[0, 2] + Cs[1, 2])) / 9
    Gv = (Cs[0, 0] + Cs[1, 1] + Cs[2, 2] - Cs[0, 1] - Cs[0, 2] - Cs[1, 2] + 3 * (Cs[3, 3] + Cs[4, 4] + Cs[5, 5])) / 15
    try:
        S = np.linalg.inv(Cs)
        Kr = 1 / (S[0, 0] + S[1, 1] + S[2, 2] + 2 * (S[0, 1] + S[0, 2] + S[1, 2]))
        Gr = 15 / (4 * (S[0, 0] + S[1, 1] + S[2, 2]) - 4 * (S[0, 1] + S[0, 2] + S[1, 2])
                   + 3 * (S[3, 3] + S[4, 4] + S[5, 5]))
    except np.linalg.LinAlgError:
        Kr = Gr = float("nan")
    return ElasticResult(
        C=C.tolist(), C_sym=Cs.tolist(), C_err=E.tolist(), C11=c11, C12=c12, C44=c44, bulk_modulus_GPa=K,
        shear_modulus_GPa=c44, shear_modulus_c11_c12_GPa=(c11 - c12) / 2, youngs_modulus_GPa=young,
        poisson_ratio=nu, zener_anisotropy=2 * c44 / (c11 - c12) if c11 != c12 else float("inf"),
        K_VRH=float((Kv + Kr) / 2), G_VRH=float((Gv + Gr) / 2), strains=strains, stresses=stresses,
        parameters=parameters or {})


def _relax(atoms, optimizer: str, fmax: float, max_steps: int) -> int:
    import ase.optimize as aopt

    if optimizer is None or max_steps == 0:
        return 0
    cls = getattr(aopt, optimizer, None)
    if cls is None:
        raise UserError(f"unknown ASE optimizer {optimizer!r}", "use BFGS, FIRE, LBFGS, ...")
    if np.abs(atoms.get_forces()).max() <= fmax:
        return 0
    opt = cls(atoms, logfile=None)
    opt.run(fmax=fmax, steps=max_steps)
    return int(opt.get_number_of_steps())


def elastic_constants(atoms, calculator=None, *, strain: float = 1e-4, steps: int = 20, fmax: float = 1e-4,
                      optimizer: str = "BFGS", max_steps: int = 500, progress: bool = False) -> ElasticResult:
    """Full C_ij (GPa) of ``atoms`` with any ASE ``calculator`` (see the module docstring).

    ``atoms`` is copied; the cell is kept fixed in every relaxation (``fmax`` eV/Å, ``optimizer``
    from :mod:`ase.optimize`; ``max_steps=0`` disables relaxation, e.g. for a Bravais lattice).
    """
    from ase.units import GPa

    if strain <= 0 or steps < 1:
        raise UserError(f"strain ({strain}) must be > 0 and steps ({steps}) ≥ 1")
    ref = atoms.copy()
    ref.calc = calculator if calculator is not None else atoms.calc
    if ref.calc is None:
        raise UserError("no calculator for the elastic constants", "pass an ASE calculator")
    if not all(ref.pbc):
        raise UserError("elastic constants need a periodic cell (pbc in x, y and z)")
    n_relax = _relax(ref, optimizer, fmax, max_steps)
    cell0 = np.array(ref.get_cell())
    s0 = ref.get_stress(voigt=True)
    data = {}
    total = 6 * 2 * steps
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="elastic", unit="step")
    for j in range(6):
        eps_list, sig_list = [0.0], [s0 / GPa]
        for sign in (1, -1):
            at = ref.copy()
            at.calc = ref.calc
            for k in range(1, steps + 1):
                e = sign * k * strain
                at.set_cell(cell0 @ (np.eye(3) + strain_matrix(j, e)), scale_atoms=True)
                n_relax += _relax(at, optimizer, fmax, max_steps)
                eps_list.append(e)
                sig_list.append(at.get_stress(voigt=True) / GPa)
                if bar is not None:
                    bar.update()
        order = np.argsort(eps_list)
        data[j] = (np.asarray(eps_list)[order], np.asarray(sig_list)[order])
    if bar is not None:
        bar.close()
    return elastic_from_stress_strain(data, {"strain": strain, "steps": steps, "fmax": fmax, "optimizer": optimizer,
                                             "n_atoms": len(ref), "relaxation_steps": n_relax,
                                             "calculator": type(ref.calc).__name__})


# --------------------------------------------------------------------------------------------
# LAMMPS deck
# --------------------------------------------------------------------------------------------

_LAMMPS_PRESSURE_TO_GPA = {"metal": 1e-4, "real": 1.01325e-4, "si": 1e-9}

_DIR_CMD = {
    0: ("x delta 0 $(v_inc*v_lx0)", "x delta 0 $(-v_back*v_lx0)"),
    1: ("y delta 0 $(v_inc*v_ly0)", "y delta 0 $(-v_back*v_ly0)"),
    2: ("z delta 0 $(v_inc*v_lz0)", "z delta 0 $(-v_back*v_lz0)"),
    3: ("yz delta $(v_inc*v_lz0)", "yz delta $(-v_back*v_lz0)"),
    4: ("xz delta $(v_inc*v_lz0)", "xz delta $(-v_back*v_lz0)"),
    5: ("xy delta $(v_inc*v_ly0)", "xy delta $(-v_back*v_ly0)"),
}


def lammps_elastic_deck(data_file: str, potential: str | Sequence[str], *, strain: float = 1e-4, steps: int = 20,
                        units: str = "metal", atom_style: str = "atomic", output: str = "elastic_stress.dat",
                        etol: float = 0.0, ftol: float = 1e-10, maxiter: int = 10000, maxeval: int = 100000,
                        min_style: str = "cg") -> str:
    """LAMMPS input reproducing :func:`elastic_constants` (stepwise ±strain, fixed-cell minimisation
    at each step, stresses written to ``output``). ``potential``: the ``pair_style``/``pair_coeff``
    (and e.g. ``kspace_style``) lines. Parse the output with :func:`parse_lammps_elastic`.

    Strains are applied with ``change_box ... remap`` relative to the relaxed reference box: normal
    strains change the box length by ε·L0, shear strains the tilt by γ·L0 (engineering strain).
    """
    if units not in _LAMMPS_PRESSURE_TO_GPA:
        raise UserError(f"units {units!r} not supported", f"use one of {sorted(_LAMMPS_PRESSURE_TO_GPA)}")
    pot = potential if isinstance(potential, str) else "\n".join(potential)
    minimize = f"minimize {etol:g} {ftol:g} {maxiter} {maxeval}"
    rec = ('print "{d} $(v_sg*v_k*v_delta:%.10e) $(pxx:%.12e) $(pyy:%.12e) $(pzz:%.12e) '
           '$(pyz:%.12e) $(pxz:%.12e) $(pxy:%.12e)" append {out} screen no')
    lines = [
        "# Elastic constants by stepwise strain (rendered by mlipflow.analysis.elastic)",
        f"# strain step {strain:g}, {steps} steps each way, 6 directions; stress = -pressure",
        f"units {units}", f"atom_style {atom_style}", "boundary p p p", "box tilt large",
        f"read_data {data_file}", "change_box all triclinic", pot,
        "thermo_style custom step pe press pxx pyy pzz pyz pxz pxy", "thermo 1000",
        f"min_style {min_style}", minimize, "run 0 post no",
        f"variable delta equal {strain:.10g}", f"variable nsteps equal {steps}",
        "variable lx0 equal $(lx)", "variable ly0 equal $(ly)", "variable lz0 equal $(lz)",
        f'print "# dir strain pxx pyy pzz pyz pxz pxy (pressure units: {units})" file {output} screen no',
        'print "0 0.0 $(pxx:%.12e) $(pyy:%.12e) $(pzz:%.12e) $(pyz:%.12e) $(pxz:%.12e) $(pxy:%.12e)" '
        f"append {output} screen no",
    ]
    for d in range(6):
        fwd, back = _DIR_CMD[d]
        lines += [
            f"# ---- direction {d + 1} ({VOIGT[d]})",
            "variable s loop 2", f"label s{d}", "variable sg equal 3-2*v_s",
            "variable inc equal v_sg*v_delta", "variable back equal v_sg*v_delta*v_nsteps",
            f"variable k loop {steps}", f"label k{d}",
            f"change_box all {fwd} remap units box", minimize, "run 0 post no",
            rec.format(d=d + 1, out=output),
            "next k", f"jump SELF k{d}",
            f"change_box all {back} remap units box", minimize,
            "next s", f"jump SELF s{d}",
        ]
    return "\n".join(lines) + "\n"


def parse_lammps_elastic(path: str, units: str = "metal", strain: float | None = None) -> ElasticResult:
    """Read the stress file written by :func:`lammps_elastic_deck` into an :class:`ElasticResult`."""
    rows = np.loadtxt(path, comments="#", ndmin=2)
    if rows.shape[1] != 8:
        raise UserError(f"{path} is not an elastic stress file (8 columns expected)")
    conv = _LAMMPS_PRESSURE_TO_GPA[units]
    zero = rows[rows[:, 0] == 0]
    data = {}
    for d in range(6):
        r = rows[rows[:, 0] == d + 1]
        if zero.size:
            r = np.vstack([zero[:1], r])
        order = np.argsort(r[:, 1])
        data[d] = (r[order, 1], -r[order, 2:] * conv)
    return elastic_from_stress_strain(data, {"source": "lammps", "file": str(path), "units": units,
                                             "strain": strain})
