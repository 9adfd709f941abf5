"""Shared test helpers for tests/labeling (structures, fake VASP outputs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

TEST_DATA = Path(__file__).resolve().parents[1] / "test_data"
VASP_REF = TEST_DATA / "vasp"
OUT_C2_DIR = VASP_REF / "outputs_c2"


def olivine(alkali: str = "Li", magmom: float | None = 4.0):
    """28-atom olivine AFePO4 (Pnma, LiFePO4 coordinates; Na cell scaled by 6 %)."""
    from pymatgen.core import Lattice, Structure

    scale = 1.0 if alkali == "Li" else 1.06
    s = Structure.from_spacegroup(
        "Pnma", Lattice.orthorhombic(10.33 * scale, 6.01 * scale, 4.69 * scale),
        [alkali, "Fe", "P", "O", "O", "O"],
        [[0, 0, 0], [0.282, 0.25, 0.975], [0.095, 0.25, 0.418], [0.097, 0.25, 0.743],
         [0.457, 0.25, 0.206], [0.166, 0.046, 0.285]],
    )
    if magmom is not None:
        s.add_site_property("magmom", [magmom if sp.symbol == "Fe" else 0.0 for sp in s.species])
    return s


def nafepo4_cells(n: int = 20, seed: int = 0):
    """n generated NaFePO4 cells: mlipflow.generation random cells when available, else rattled olivine."""
    try:
        from mlipflow.generation import random_structure

        out = []
        for i in range(n):
            kw = {"use_mp": False} if "use_mp" in _params(random_structure) else {}
            r = random_structure("NaFePO4", atoms=14, seed=seed + i, **kw)
            out.append(r[0] if isinstance(r, tuple) else r)
        return out, "mlipflow.generation.random_structure"
    except Exception:  # noqa: BLE001 - generation/ is written concurrently by another engineer
        rng = np.random.default_rng(seed)
        base = olivine("Na", magmom=None)
        out = []
        for _ in range(n):
            s = base.copy()
            s.perturb(0.1 + 0.1 * rng.random())
            out.append(s)
        return out, "rattled olivine"


def _params(fn) -> set[str]:
    import inspect

    return set(inspect.signature(fn).parameters)


def write_oszicar(vasprun_path: Path, out: Path) -> None:
    """An OSZICAR consistent with a vasprun.xml (custodian's handlers read it; VASP writes both)."""
    from pymatgen.io.vasp import Vasprun

    vr = Vasprun(str(vasprun_path), parse_dos=False, parse_eigen=False, parse_potcar_file=False)
    lines = []
    for i, st in enumerate(vr.ionic_steps, start=1):
        lines.append("       N       E                     dE             d eps       ncg     rms          rms(c)")
        prev = 0.0
        for j, es in enumerate(st["electronic_steps"], start=1):
            e = es["e_fr_energy"]
            lines.append(f"DAV: {j:3d}   {e: .12E}   {e - prev: .5E}   {-0.1: .5E}  1000   0.100E+00")
            prev = e
        lines.append(f"{i:4d} F= {st['e_fr_energy']: .8E} E0= {st['e_0_energy']: .8E}  d E ={0.0: .6E}")
    out.write_text("\n".join(lines) + "\n")


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


class BadCalculator:
    """An ASE calculator that misbehaves on purpose: mode 'nan', 'huge' (|F| = 500 eV/Å) or 'raise'.

    Wraps EMT so good frames are real; used by name as 'labeling_helpers:BadCalculator'.
    """

    def __new__(cls, mode: str = "nan", bad_every: int = 2):
        from ase.calculators.calculator import Calculator, all_changes
        from ase.calculators.emt import EMT

        class _Bad(EMT):
            implemented_properties = ["energy", "free_energy", "forces", "stress"]

            def __init__(self):
                super().__init__()
                self.calls = 0

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                Calculator.calculate(self, atoms, properties, system_changes)
                self.calls += 1
                super().calculate(atoms, properties, system_changes)
                if self.calls % bad_every == 0:
                    if mode == "raise":
                        raise RuntimeError("SCF exploded (test calculator)")
                    if mode == "nan":
                        self.results["energy"] = float("nan")
                    if mode == "huge":
                        f = self.results["forces"].copy()
                        f[0] = [500.0, 0.0, 0.0]
                        self.results["forces"] = f

        return _Bad()


def cu_cells(n: int = 6, seed: int = 0):
    """Rattled fcc Cu / Cu-Al cells (ASE Atoms) for EMT labeling."""
    from ase.build import bulk

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        at = bulk("Cu", "fcc", a=3.61, cubic=True) * (2 if i % 2 else 1, 1, 1)
        if i % 3 == 0:
            syms = at.get_chemical_symbols()
            syms[0] = "Al"
            at.set_chemical_symbols(syms)
        at.set_cell(at.cell * (1 + rng.uniform(-0.03, 0.03)), scale_atoms=True)
        at.rattle(0.05 + 0.05 * rng.random(), seed=int(rng.integers(1 << 30)))
        out.append(at)
    return out
