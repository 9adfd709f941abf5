"""Registries: a name in a campaign file -> the adapter that implements it.

Three registries, one class: potential kinds (``ace``, ``dp``, ``classical``), MD engines
(``ase``, ``lammps``) and labelers (``chgnet``, ``emt``, ``vasp``). Entries are import paths
(``"module:attribute"``), imported on first use, so listing the choices never imports TensorFlow,
torch or atomate2. Adding an adapter is one module plus one line here (or a
:meth:`Registry.register` call from user code); see docs/extending.md.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlipflow.errors import UserError


def import_object(path: str):
    """``'package.module:Name'`` (or ``'package.module.Name'``) -> the object."""
    if ":" in path:
        mod_name, _, attr = path.partition(":")
    else:
        mod_name, _, attr = path.rpartition(".")
    if not mod_name or not attr:
        raise UserError(f"cannot import {path!r}", "name it as 'package.module:ClassName'")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"module {mod_name!r} not found ({exc})", "install it or fix the import path") from exc
    try:
        obj = mod
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise UserError(f"{mod_name} has no {attr!r}", "check the class name") from exc
    return obj


class Registry:
    """Named entries, each an object or the import path of one (resolved lazily)."""

    def __init__(self, what: str, entries: dict[str, Any], hint: str = ""):
        self.what = what
        self.hint = hint
        self._entries: dict[str, Any] = dict(entries)

    def register(self, name: str, entry: Any, replace: bool = False) -> None:
        if name in self._entries and not replace:
            raise UserError(f"{self.what} {name!r} is already registered", "choose another name or pass replace=True")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def check(self, name: str) -> None:
        """Raise the registry's clear error when ``name`` is unknown (nothing is imported)."""
        if name not in self._entries:
            raise UserError(f"unknown {self.what} {name!r}",
                            f"use one of: {', '.join(self.names())}" + (f" ({self.hint})" if self.hint else ""))

    def get(self, name: str) -> Any:
        self.check(name)
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = import_object(entry)
            self._entries[name] = entry
        return entry


#: Potential kinds: files, ASE calculator, LAMMPS pair block, uncertainty (mlipflow.engines.potentials).
POTENTIAL_KINDS = Registry("potential kind", {
    "ace": "mlipflow.engines.kind_ace:AceKind",
    "dp": "mlipflow.engines.kind_dp:DPKind",
    "classical": "mlipflow.engines.kind_classical:ClassicalKind",
})

#: MD engines: run(protocol, atoms, potential, workdir) -> MDResult (mlipflow.engines.md).
MD_ENGINES = Registry("MD engine", {
    "ase": "mlipflow.engines.ase_md:AseEngine",
    "lammps": "mlipflow.engines.lammps:LammpsEngine",
})

#: Labelers: name -> factory(spec, **options) -> Labeler (mlipflow.engines.labelers).
#: ``vasp:<input set>`` resolves to the ``vasp`` entry; any ``module:Class`` ASE calculator works too.
LABELERS = Registry("labeler", {
    "chgnet": "mlipflow.engines.labelers:chgnet_labeler",
    "emt": "mlipflow.engines.labelers:emt_labeler",
    "lj": "mlipflow.engines.labelers:lj_labeler",
    "vasp": "mlipflow.engines.vasp:vasp_labeler",
}, hint="or vasp:<input set>, or an ASE calculator as 'package.module:ClassName'")
