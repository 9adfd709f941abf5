"""Labeled frames and datasets."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from mlipflow.schemas.base import MlipflowDocument, Model


class FrameStatus(str, Enum):
    ok = "ok"
    failed = "failed"


class LabelerSpec(MlipflowDocument):
    """Which calculator labeled a frame and with what settings (no secrets)."""

    doc_type = "labeler"
    kind: Literal["vasp", "ase"] = Field(..., description="'vasp' (atomate2/custodian) or 'ase' (any ASE calculator).")
    name: str = Field(..., description="Labeler id, e.g. 'chgnet', 'vasp:nafepo4_ace', 'module:Class'.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Calculator keyword arguments or INCAR/KPOINTS settings.")


class LabeledFrame(MlipflowDocument):
    """One structure with its reference energy, forces, stress and magnetic moments."""

    doc_type = "frame"
    frame_id: str = Field(..., description="Content hash of structure + labeler settings (the cache key).")
    structure: dict[str, Any] = Field(..., description="pymatgen Structure.as_dict(); positions in Å.")
    formula: str = Field("", description="Reduced formula.")
    elements: list[str] = Field(default_factory=list, description="Sorted chemical symbols present.")
    nsites: int = Field(0, description="Number of atoms.")
    energy: float | None = Field(None, description="Total energy (eV).")
    forces: list[list[float]] | None = Field(None, description="Forces per atom (eV/Å), shape (nsites, 3).")
    stress: list[list[float]] | None = Field(None, description="Stress tensor 3x3 (GPa, ASE sign convention: positive = tensile).")
    magmoms: list[float] | None = Field(None, description="Magnetic moment per atom (µB), if the labeler gives them.")
    labeler: str = Field(..., description="Labeler id.")
    labeler_settings: dict[str, Any] = Field(default_factory=dict, description="Labeler settings used (no secrets).")
    status: FrameStatus = Field(FrameStatus.ok, description="'ok' or 'failed'.")
    failure_reason: str | None = Field(None, description="Why the label failed (unconverged SCF, custodian give-up, NaN, force above threshold, ...).")
    source: str | None = Field(None, description="Origin: 'aimd', 'relax', 'static', 'al-iteration-N', 'import:<file>' ...")
    trajectory_id: str | None = Field(None, description="Trajectory (AIMD/relaxation) the frame came from.")
    step: int | None = Field(None, description="Ionic step within that trajectory.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Extra information (temperature K, composition label, ...).")


class DatasetRef(Model):
    """One dataset version, as it travels between jobs."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="Dataset name.")
    version: int = Field(..., description="Version number.")
    input_hash: str | None = Field(None, description="Content hash of the version.")

    @classmethod
    def coerce(cls, obj: Any) -> DatasetRef:
        """From itself, its dict, a DatasetDoc (or its dict) or 'name:version'."""
        if isinstance(obj, DatasetRef):
            return obj
        if isinstance(obj, DatasetDoc):
            return obj.ref
        if isinstance(obj, str):
            name, sep, version = obj.rpartition(":")
            if not sep or not version.isdigit():
                raise ValueError(f"{obj!r} is not 'name:version'")
            return cls(name=name, version=int(version))
        if isinstance(obj, dict):
            return cls(name=obj["name"], version=int(obj["version"]), input_hash=obj.get("input_hash"))
        raise TypeError(f"cannot make a DatasetRef from {type(obj).__name__}")

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


class DatasetDoc(MlipflowDocument):
    """A versioned, immutable set of frame ids with a train/test split."""

    doc_type = "dataset"
    doc_schema_version = "2.0"  # 2.0: parent is a DatasetRef
    name: str = Field(..., description="Dataset name.")
    version: int = Field(1, description="Version number; each change makes a new version.")
    frame_ids: list[str] = Field(default_factory=list, description="Member frames (only status 'ok').")
    train_ids: list[str] = Field(default_factory=list, description="Training split.")
    test_ids: list[str] = Field(default_factory=list, description="Test split.")
    split: dict[str, Any] = Field(default_factory=dict, description="How the split was made: method ('random'|'composition'), fraction, seed.")
    reference_energies: dict[str, float] = Field(default_factory=dict, description="Isolated-atom energies per element (eV) used for energy_corrected.")
    n_failed_excluded: int = Field(0, description="Failed frames that were excluded.")
    n_duplicates_removed: int = Field(0, description="Identical structures removed.")
    exports: dict[str, str] = Field(default_factory=dict, description="Format -> path of exported files.")
    parent: DatasetRef | None = Field(None, description="The dataset version this one extends.")

    @field_validator("parent", mode="before")
    @classmethod
    def _parent(cls, v):
        return DatasetRef.coerce(v) if isinstance(v, str) else v

    @property
    def ref(self) -> DatasetRef:
        return DatasetRef(name=self.name, version=self.version, input_hash=self.input_hash)
