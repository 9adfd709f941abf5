"""MD protocols, runs, structure sets, analysis results and campaigns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlipflow.schemas.base import MlipflowDocument, Model
from mlipflow.schemas.potentials import PotentialRef


class MDStage(Model):
    """One stage of an MD protocol."""

    ensemble: Literal["nvt", "npt", "nve", "min"] = Field("nvt", description="Ensemble.")
    steps: int = Field(..., ge=0, description="Number of MD steps.")
    t_start: float = Field(300.0, gt=0, description="Thermostat temperature at the start (K).")
    t_end: float | None = Field(None, gt=0, description="Temperature at the end (K); linear ramp. None = constant.")
    pressure: float | None = Field(None, description="Pressure for NPT (bar); required for NPT stages.")
    coupling: Literal["iso", "aniso", "tri"] = Field(
        "iso", description="NPT cell coupling: iso (one length scale), aniso (a, b, c independently), tri (full cell).")
    label: str = Field("", description="Stage name, e.g. 'melt', 'quench'.")
    thermo_every: int | None = Field(None, gt=0, description="Thermo interval in this stage (steps); None: the protocol's.")
    dump_every: int | None = Field(None, gt=0, description="Trajectory interval in this stage (steps); None: the protocol's.")
    discard_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Leading fraction of this stage that analysis discards (equilibration).")

    @model_validator(mode="after")
    def _npt_needs_pressure(self):
        if self.ensemble == "npt" and self.pressure is None:
            from mlipflow.errors import UserError

            raise UserError(f"the NPT stage {self.label or '(unnamed)'!r} has no pressure",
                            "give pressure: in bar (e.g. pressure: 0.0 or 1.0) for every npt stage")
        return self


class StageWindow(Model):
    """Where one stage sits in a run (absolute steps) and the part analysis keeps."""

    label: str
    index: int
    first_step: int = Field(..., description="Step at which the stage starts.")
    last_step: int = Field(..., description="Step at which the stage ends.")
    analysis_first_step: int = Field(..., description="First step analysis uses (after discard_fraction).")


class MDProtocol(Model):
    """One protocol object, rendered for ASE and for LAMMPS."""

    name: str = Field("md", description="Protocol name.")
    timestep_fs: float = Field(1.0, gt=0, description="Time step (fs).")
    stages: list[MDStage] = Field(default_factory=list, description="Stages run in order.")
    thermostat: Literal["nose-hoover", "bussi", "langevin"] = Field("nose-hoover", description="Thermostat.")
    tdamp_fs: float = Field(100.0, description="Thermostat damping time (fs).")
    pdamp_fs: float = Field(1000.0, description="Barostat damping time (fs).")
    thermo_every: int = Field(100, description="Thermodynamic output interval (steps).")
    dump_every: int = Field(1000, description="Trajectory frame interval (steps).")
    gamma_every: int = Field(10, description="Interval of uncertainty evaluation (steps).")
    gamma_lo: float | None = Field(None, description="Collect frames whose uncertainty (ACE: max γ; DP: max force deviation) exceeds this.")
    gamma_hi: float | None = Field(None, description="Stop the run when the uncertainty exceeds this.")
    collect_every_kelvin: float | None = Field(None, description="Also keep a frame each time T crosses a multiple of this (K).")
    seed: int = Field(0, description="Random seed for velocities and thermostat.")
    restart_every: int | None = Field(None, gt=0, description="Checkpoint interval (steps): LAMMPS write_restart, ASE checkpoint; a killed run continues from the last one. None: no checkpoints.")

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def windows(self) -> list[StageWindow]:
        """Absolute step range of every stage (the engines keep step numbers aligned with these)."""
        out, step = [], 0
        for i, st in enumerate(self.stages):
            first, last = step, step + st.steps
            out.append(StageWindow(label=st.label or f"stage{i}", index=i, first_step=first, last_step=last,
                                   analysis_first_step=first + int(round(st.discard_fraction * st.steps))))
            step = last
        return out

    def window(self, label: str) -> StageWindow:
        """The window of the stage called ``label`` (a clear error naming the labels otherwise)."""
        for w in self.windows():
            if w.label == label:
                return w
        from mlipflow.errors import UserError

        raise UserError(f"protocol {self.name!r} has no stage {label!r}",
                        f"use one of {[w.label for w in self.windows()]}")

    @property
    def max_temperature(self) -> float | None:
        """The highest thermostat temperature of any stage (K)."""
        temps = [t for st in self.stages if st.ensemble != "min" for t in (st.t_start, st.t_end) if t is not None]
        return max(temps) if temps else None

    @property
    def tracks_uncertainty(self) -> bool:
        """Whether the run needs the potential's uncertainty signal (a threshold is set)."""
        return self.gamma_lo is not None or self.gamma_hi is not None


class MDRunDoc(MlipflowDocument):
    """An MD run."""

    doc_type = "md_run"
    doc_schema_version = "2.0"  # 2.0: engine is a registry name; potential reference, run_id, label, bounded
    protocol: MDProtocol = Field(..., description="The protocol that was run.")
    engine: str = Field(..., description="MD engine (registry name): 'ase', 'lammps', ...")
    potential: PotentialRef | None = Field(None, description="The potential that drove the run.")
    run_id: str | None = Field(None, description="Run id (candidates and frames carry it).")
    label: str | None = Field(None, description="Role of the run, e.g. 'first'/'final' for stability tests.")
    bounded: bool | None = Field(None, description="Stability runs: energies and forces stayed bounded.")
    formula: str = Field("", description="Reduced formula.")
    nsites: int = Field(0, description="Number of atoms.")
    steps_done: int = Field(0, description="Steps completed.")
    terminated: bool = Field(False, description="Stopped early (γ above the upper threshold or instability).")
    termination_reason: str | None = Field(None, description="Why it stopped early.")
    thermo: dict[str, list[float | None]] = Field(default_factory=dict, description="Columns (None where not computed): step, time_ps, temperature_K, potential_energy_eV, pressure_bar, volume_A3, density_g_cm3, max_gamma.")
    trajectory: dict[str, Any] | None = Field(None, description="Blob: frames (positions Å, cell Å, numbers, step).")
    trajectory_path: str | None = Field(None, description="Trajectory file on disk.")
    final_structure: dict[str, Any] | None = Field(None, description="pymatgen Structure of the last frame.")
    wall_time_s: float | None = Field(None, description="Wall time (s).")
    restart_file: str | None = Field(None, description="Last checkpoint written (LAMMPS restart / ASE checkpoint): a rerun continues from it.")
    resumed_from_step: list[int] = Field(default_factory=list, description="Steps at which this run was continued from a checkpoint.")
    trajectory_files: list[str] = Field(default_factory=list, description="Full trajectory on disk (LAMMPS dump with image flags, ASE chunks), in order.")


class StructureSetDoc(MlipflowDocument):
    """A set of generated structures with the generator parameters."""

    doc_type = "structure_set"
    generator: str = Field(..., description="'amorphous' or 'olivine'.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Generator parameters.")
    seed: int | None = Field(None, description="Random seed.")
    structures: list[dict[str, Any]] = Field(default_factory=list, description="pymatgen Structure dicts (with site properties).")
    entries: list[dict[str, Any]] = Field(default_factory=list, description="Per structure: formula, composition label, scale, density (g/cm³), density source, natoms.")


class AnalysisDoc(MlipflowDocument):
    """Result of an analysis on an MD run or structure."""

    doc_type = "analysis"
    kind: str = Field(..., description="'structure', 'diffusion', 'arrhenius', 'elastic', 'tg', 'vanhove', ...")
    source: str | None = Field(None, description="uuid/input_hash of the analysed run.")
    parameters: dict[str, Any] = Field(default_factory=dict, description="Cutoffs, windows, units as used.")
    results: dict[str, Any] = Field(default_factory=dict, description="Results (JSON keys documented in docs/analysis.md).")
    plots: dict[str, str] = Field(default_factory=dict, description="Plot name -> path.")


class CampaignDoc(MlipflowDocument):
    """A campaign: its configuration, status and children."""

    doc_type = "campaign"
    name: str = Field(..., description="Campaign name.")
    config: dict[str, Any] = Field(default_factory=dict, description="Campaign configuration (no secrets).")
    status: Literal["created", "running", "completed", "failed", "stopped"] = Field("created", description="Status.")
    children: dict[str, list[str]] = Field(default_factory=dict, description="Document kind -> input_hash/uuid of children.")
    summary: dict[str, Any] = Field(default_factory=dict, description="Headline results (iterations, labels, errors, γ).")
