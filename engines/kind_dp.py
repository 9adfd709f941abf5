"""The ``dp`` potential kind: a frozen DeePMD-kit model (``.pth`` PyTorch, ``.pb`` TensorFlow).

Files (roles): ``model`` (the frozen model); ensembles list further members as ``model_1``,
``model_2``, ... . ASE calculator: ``deepmd.calculator.DP``. LAMMPS: ``pair_style deepmd`` (the
DeePMD-kit plugin); with an ensemble and uncertainty, ``out_freq``/``out_file`` write the model
deviation. Uncertainty: the ensemble's maximum force deviation (DP-GEN's ``max_devi_f``).
Training and fine-tuning belong to the DeePMD issue's maker.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlipflow.engines.potentials import PairBlock, PotentialKind
from mlipflow.errors import MissingDependencyError, UserError


def _members(files):
    return [files[k] for k in sorted(files) if k == "model" or k.startswith("model_")]


class DPKind(PotentialKind):
    name = "dp"
    suffixes = (".pth", ".pb")
    uncertainty = "deviation"
    stems = {"model": "model"}

    def stem(self, role):
        return role if role.startswith("model") else None

    def require_uncertainty(self, files):
        if len(_members(files)) < 2:
            raise UserError("the model deviation needs an ensemble of at least two DeePMD models",
                            "train an ensemble (different seeds) and reference all members")

    def ase_calculator(self, files, uncertainty: bool = False, **options: Any):
        try:
            from deepmd.calculator import DP
        except ImportError as exc:
            raise MissingDependencyError("DeePMD-kit", "scripts/bootstrap.sh (builds deepmd-kit from source)") from exc
        calc = DP(model=str(files["model"]), **options)
        if uncertainty:
            calc.mlipflow_members = [DP(model=str(m)) for m in _members(files)[1:]]
        return calc

    def uncertainty_of(self, atoms) -> float | None:
        calc = atoms.calc
        members = getattr(calc, "mlipflow_members", None)
        if not members:
            return None
        forces = [np.asarray(calc.results["forces"])]
        for m in members:
            m.calculate(atoms, ["forces"])
            forces.append(np.asarray(m.results["forces"]))
        f = np.stack(forces)  # (models, atoms, 3)
        dev = np.sqrt(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=-1), axis=0))
        return float(dev.max())

    def lammps_packages(self, ref, kokkos=False):
        return ["DEEPMD"]

    def lammps_pair(self, files, elements, kokkos=False, uncertainty=False) -> PairBlock:
        members = _members(files)
        used = members if uncertainty else members[:1]
        extra = " out_freq {every} out_file model_devi.out" if uncertainty else ""
        return PairBlock(lines=["# DeePMD-kit (plugin)", f"pair_style deepmd {' '.join(m.name for m in used)}{extra}",
                                "pair_coeff * *"],
                         packages=["DEEPMD"], files={m.name: str(m) for m in used})
