"""The ``ace`` potential kind: pacemaker's B-basis ``.yaml`` (+ ``.yace``, + active set ``.asi``).

Files (roles): ``model`` (B-basis .yaml, the fit's output), ``yace`` (LAMMPS ``pair_style pace``
format), ``active_set`` (``.asi``, needed for the extrapolation grade γ), ``input`` (the rendered
pacemaker input). Uncertainty: the per-atom extrapolation grade γ (D-optimality) against the active
set; its maximum over atoms is the frame's value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlipflow.engines.potentials import PairBlock, PotentialKind
from mlipflow.errors import MissingDependencyError, UserError


class AceKind(PotentialKind):
    name = "ace"
    suffixes = (".yaml", ".yml", ".yace", ".ace")
    uncertainty = "gamma"
    energy_target = "energy_corrected"

    def stem(self, role):
        return {"model": "potential", "yace": "potential", "active_set": "potential", "input": "input"}.get(role)

    def write_files(self, ref, doc, directory):
        if ref.paths and "active_set" not in ref.paths:  # a user's pot.yaml with pot.asi beside it
            asi = Path(ref.paths.get("model", "")).with_suffix(".asi")
            if asi.is_file():
                ref = ref.model_copy(update={"paths": {**ref.paths, "active_set": str(asi)}})
        return super().write_files(ref, doc, directory)

    def elements(self, files):
        from pyace import ACEBBasisSet

        model = files.get("model")
        if model is None or model.suffix not in (".yaml", ".yml"):
            return []
        return list(ACEBBasisSet(str(model)).elements_name)

    def require_uncertainty(self, files):
        if "active_set" not in files:
            raise UserError("this ACE potential has no active set (.asi), so γ cannot be computed",
                            "fit with compute_active_set=True (or run pace_activeset and put the .asi next to the .yaml)")
        if files["model"].suffix not in (".yaml", ".yml"):
            raise UserError("an active set needs the B-basis .yaml potential (a .yace cannot carry one)",
                            "pass the .yaml file")

    def ase_calculator(self, files, uncertainty: bool = False, **options: Any):
        try:
            from pyace import PyACECalculator
        except ImportError as exc:  # pragma: no cover - pyace is installed here
            raise MissingDependencyError("pyace (python-ace)", "pip install python-ace==0.4.0rc1") from exc
        model = files.get("model") or files.get("yace")
        try:
            calc = PyACECalculator(str(model), **options)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"{model} is not a valid ACE potential ({exc})",
                            "give the output_potential.yaml (or .yace) written by pacemaker") from exc
        if uncertainty:
            calc.set_active_set(str(files["active_set"]))
        return calc

    def uncertainty_of(self, atoms) -> float | None:
        from mlipflow.engines.ase_md import results_max

        if not getattr(atoms.calc, "is_active_set_configured", False):
            return None
        return results_max(atoms, "gamma")

    def lammps_packages(self, ref, kokkos=False):
        return ["ML-PACE"] + (["KOKKOS"] if kokkos else [])

    def lammps_pair(self, files, elements, kokkos=False, uncertainty=False, **_) -> PairBlock:
        from mlipflow.engines.lammps import GammaSource

        suffix = "/kk" if kokkos else ""
        packages = self.lammps_packages(None, kokkos)
        els = " ".join(elements)
        if uncertainty:
            style = f"pace/extrapolation{suffix}"
            model, asi = Path(files["model"]), Path(files["active_set"])
            return PairBlock(
                lines=["# ACE with extrapolation grade (ML-PACE)", f"pair_style {style}",
                       f"pair_coeff * * {model.name} {asi.name} {els}"],
                packages=packages, files={model.name: str(model), asi.name: str(asi)},
                uncertainty=GammaSource(setup=[f"fix pace_gamma all pair {{every}} {style} gamma 1"],
                                        per_atom="f_pace_gamma"),
            )
        model = Path(files.get("yace") or files["model"])
        return PairBlock(lines=["# ACE (ML-PACE)", f"pair_style pace{suffix} product", f"pair_coeff * * {model.name} {els}"],
                         packages=packages, files={model.name: str(model)})
