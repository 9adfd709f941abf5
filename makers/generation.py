"""Makers for structure generation: amorphous composition-grid cells and olivine Li_xFePO4 cells.

Thin jobflow wrappers around :mod:`mlipflow.generation`; the structures (pymatgen dicts with
site properties) go to the blob store (``@job(data=["structures"])``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobflow import Maker, job

from mlipflow.schemas.base import content_hash
from mlipflow.schemas.md import StructureSetDoc


def _entry(info: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: info[k] for k in keys if k in info}


AMORPHOUS_ENTRY_KEYS = ("index", "label", "formula", "reduced_formula", "fractions", "unit_counts", "natoms",
                        "scale", "density", "nominal_density", "density_source", "density_method", "charge")
OLIVINE_ENTRY_KEYS = ("formula", "natoms", "x_target", "x_actual", "n_li_removed", "n_fe3", "ordering",
                      "polarons", "interface", "rattle", "contraction", "removed_li_sites", "fe3_sites", "charge")


@dataclass
class AmorphousStructuresMaker(Maker):
    """Random cells over the mole-fraction grid of oxide units (see mlipflow.generation.amorphous)."""

    name: str = "amorphous structures"
    units: list[str] = field(default_factory=lambda: ["Na2O", "FeO", "P2O5"])
    step: float = 0.1
    atoms: int = 100
    min_distance: float = 1.7
    pair_min_distance: dict[str, float] | None = None  # {"Na-O": 2.0}
    scales: list[float] = field(default_factory=lambda: [0.8, 1.0, 1.2])
    seed: int = 0
    density: float | None = None
    end_members: bool = True
    use_mp: bool = True

    def parameters(self) -> dict[str, Any]:
        return {
            "units": list(self.units), "step": self.step, "atoms": self.atoms, "min_distance": self.min_distance,
            "pair_min_distance": self.pair_min_distance, "scales": list(self.scales), "density": self.density,
            "end_members": self.end_members, "use_mp": self.use_mp,
        }

    @job(data=["structures"])
    def make(self, campaign: str | None = None) -> StructureSetDoc:
        from mlipflow.generation import amorphous_structures

        items = amorphous_structures(
            self.units, step=self.step, atoms=self.atoms, min_distance=self.min_distance, scales=self.scales,
            seed=self.seed, density=self.density, end_members=self.end_members,
            pair_min_distance=self.pair_min_distance, use_mp=self.use_mp,
        )
        params = self.parameters()
        sources = sorted({info["density_source"] for _, info in items})
        params["density_sources"] = sources
        return StructureSetDoc(
            generator="amorphous", parameters=params, seed=self.seed,
            structures=[st.as_dict() for st, _ in items],
            entries=[_entry(info, AMORPHOUS_ENTRY_KEYS) for _, info in items],
            input_hash=content_hash("amorphous", self.parameters(), self.seed), campaign=campaign,
        )


@dataclass
class OlivineMaker(Maker):
    """Olivine Li_xFePO4 supercells (see mlipflow.generation.olivine); one structure per seed in ``seeds``."""

    name: str = "olivine structures"
    supercell: list[int] = field(default_factory=lambda: [1, 2, 2])
    x: float = 1.0
    ordering: str | list[int] = "random"
    polarons: str | None = "random"
    interface: str | None = None
    rattle: float = 0.0
    contraction: float | None = None
    seed: int = 0
    n_structures: int = 1

    def parameters(self) -> dict[str, Any]:
        return {
            "supercell": list(self.supercell), "x": self.x, "ordering": self.ordering, "polarons": self.polarons,
            "interface": self.interface, "rattle": self.rattle, "contraction": self.contraction,
            "n_structures": self.n_structures,
        }

    @job(data=["structures"])
    def make(self, campaign: str | None = None) -> StructureSetDoc:
        from mlipflow.generation import olivine_supercell

        structures, entries = [], []
        for k in range(self.n_structures):
            st, info = olivine_supercell(
                self.supercell, x=self.x, ordering=self.ordering, polarons=self.polarons,
                seed=self.seed + k, interface=self.interface, rattle=self.rattle, contraction=self.contraction,
            )
            structures.append(st.as_dict())
            entries.append({**_entry(info, OLIVINE_ENTRY_KEYS), "seed": self.seed + k, "scale": 1.0,
                            "density": float(st.density), "density_source": "crystal structure",
                            "label": f"Li{info['x_actual']:.3g}FePO4"})
        return StructureSetDoc(
            generator="olivine", parameters=self.parameters(), seed=self.seed, structures=structures,
            entries=entries, input_hash=content_hash("olivine", self.parameters(), self.seed), campaign=campaign,
        )
