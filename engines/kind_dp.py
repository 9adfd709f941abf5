"""The ``dp`` potential kind: a frozen DeePMD-kit model (``.pth`` PyTorch, ``.pb`` TensorFlow).

Files (roles): ``model`` (the frozen model); ensembles list further members as ``model_1``,
``model_2``, ... . Fitted documents (:class:`mlipflow.makers.deepmd.DPFitMaker`) also carry each
member's training checkpoint (``checkpoint``, ``checkpoint_1``, ...: what ``--finetune`` needs for a
warm start), learning curves (``lcurve``, ``lcurve_1``, ...) and the rendered ``input``.
ASE calculator: ``deepmd.calculator.DP``. LAMMPS: ``pair_style deepmd`` (the DeePMD-kit plugin);
with an ensemble and uncertainty, ``out_freq``/``out_file`` write the model deviation.
Uncertainty: the ensemble's maximum force deviation (DP-GEN's ``max_devi_f``), computed with
DeePMD-kit's ``calc_model_devi_f`` on the members' forces: per atom the norm of the standard
deviation (over models) of the force vector, maximum over atoms. Training and fine-tuning:
:mod:`mlipflow.engines.deepmd`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from mlipflow.engines.potentials import PairBlock, PotentialKind
from mlipflow.errors import MissingDependencyError, UserError


def _member_index(role: str) -> int | None:
    if role == "model":
        return 0
    if role.startswith("model_") and role[6:].isdigit():
        return int(role[6:])
    return None


def _members(files):
    """The ensemble's frozen models in member order (model, model_1, model_2, ...)."""
    idx = {k: _member_index(k) for k in files}
    return [files[k] for k in sorted((k for k in files if idx[k] is not None), key=lambda k: idx[k])]


def max_force_deviation(forces) -> float:
    """DP-GEN's ``max_devi_f`` of one frame from the members' forces ``(models, atoms, 3)``,
    through DeePMD-kit's ``calc_model_devi_f``."""
    from deepmd.infer.model_devi import calc_model_devi_f

    fs = np.asarray(forces, dtype=float)[:, None]  # (models, 1 frame, atoms, 3)
    return float(calc_model_devi_f(fs)[0][0])


class DPKind(PotentialKind):
    name = "dp"
    suffixes = (".pth", ".pb")
    uncertainty = "deviation"
    stems = {"model": "model"}

    def stem(self, role):
        return role if _member_index(role) is not None or role.startswith("checkpoint") else None

    def write_files(self, ref, doc, directory):
        """Files on disk are copied straight to their canonical names (ensemble members given by
        path are often all called ``model.pth``); stored documents go through the default."""
        if doc is None and ref.paths:
            out = {}
            for role, src in ref.paths.items():
                stem = self.stem(role)
                target = Path(directory) / ((stem + Path(src).suffix) if stem else Path(src).name)
                shutil.copyfile(src, target)
                out[role] = target
            return out
        return super().write_files(ref, doc, directory)

    def elements(self, files):
        model = files.get("model")
        if model is None:
            return []
        from deepmd.infer import DeepPot

        return list(DeepPot(str(model)).get_type_map())

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
            calc.mlipflow_members = [DP(model=str(m), **options) for m in _members(files)[1:]]
        return calc

    def uncertainty_of(self, atoms) -> float | None:
        calc = atoms.calc
        members = getattr(calc, "mlipflow_members", None)
        if not members:
            return None
        if "forces" not in calc.results:
            atoms.get_forces()
        forces = [np.asarray(calc.results["forces"])]
        for m in members:
            m.calculate(atoms, ["forces"])
            forces.append(np.asarray(m.results["forces"]))
        return max_force_deviation(np.stack(forces))  # (models, atoms, 3)

    def lammps_packages(self, ref, kokkos=False):
        return ["DEEPMD"]

    def lammps_pair(self, files, elements, kokkos=False, uncertainty=False, **_) -> PairBlock:
        members = _members(files)
        used = members if uncertainty else members[:1]
        extra = " out_freq {every} out_file model_devi.out" if uncertainty else ""
        # element names map LAMMPS types to the model's type map (DeePMD-kit >= 2.2)
        return PairBlock(lines=["# DeePMD-kit (plugin)", f"pair_style deepmd {' '.join(m.name for m in used)}{extra}",
                                f"pair_coeff * * {' '.join(elements)}".rstrip()],
                         packages=["DEEPMD"], files={m.name: str(m) for m in used})
