"""Configuration of the ACE batch active-learning campaign (the campaign file's `parameters`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from mlipflow.schemas.base import Model


class _Strict(Model):
    model_config = ConfigDict(extra="forbid")


class StructuresConfig(_Strict):
    """Pseudo-random cells over a composition grid of oxide (or element) units."""

    units: list[str] = Field(["Na2O", "FeO", "P2O5"], description="Unit formulas spanning the composition space.")
    step: float = Field(0.1, gt=0, le=1, description="Mole-fraction grid step.")
    atoms: int = Field(100, ge=2, description="Approximate atoms per cell.")
    min_distance: float = Field(1.7, gt=0, description="Minimum interatomic distance at scale 1 (Å).")
    pair_min_distance: dict[str, float] | None = Field(
        None, description="Per-pair minimum distances at scale 1 (Å), e.g. {Na-Na: 2.6, P-P: 2.6}; other pairs: min_distance.")
    scales: list[float] = Field([0.8, 1.0, 1.2], description="Linear cell scale factors applied after packing.")
    end_members: bool = Field(True, description="Include pure end members of the grid.")
    density: float | None = Field(None, gt=0, description="Density (g/cm³); None: from crystalline phases.")
    seed: int = Field(0, description="Seed of the initial structures (exploration uses seed + 1000·iteration).")
    max_compositions: int | None = Field(None, ge=1, description="Use only this many grid points (evenly spread) — laptop runs.")
    use_mp: bool = Field(False, description="Query the Materials Project for densities (needs an API key).")

    @model_validator(mode="after")
    def _grid(self):
        """The units parse (known elements, neutral) and every grid point meets ``atoms``: checked when
        the campaign is loaded, not inside its first job."""
        from mlipflow.generation.composition import composition_grid

        composition_grid(self.units, step=self.step, atoms=self.atoms, end_members=self.end_members)
        return self


class AIMDConfig(_Strict):
    """Initial high-temperature MD labeled by the reference labeler."""

    temperature: float = Field(5000.0, gt=0, description="Temperature (K).")
    steps: int = Field(100, ge=1, description="MD steps (paper: 200 fs at 2 fs).")
    timestep_fs: float = Field(2.0, gt=0, description="Time step (fs).")
    every: int = Field(20, ge=1, description="Keep a frame every this many steps (paper: 40 fs).")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="Test split of the dataset.")
    split: Literal["random", "composition"] = Field("random", description="Split method.")


class ExploreConfig(_Strict):
    """Melt-quench exploration with the current potential (γ-tracked)."""

    engine: str = Field("ase", description="MD engine (registry name): 'ase' (embedded) or 'lammps' (cluster decks with pace/extrapolation).")
    structures_per_iteration: int | None = Field(None, ge=1, description="New random cells per iteration (default: as many as the initial set).")
    t_melt: float = Field(5000.0, gt=0, description="Melt temperature (K).")
    melt_ps: float = Field(10.0, ge=0, description="Melt duration (ps).")
    cooling_rate_K_per_ps: float = Field(10.0, gt=0, description="Linear cooling rate (K/ps).")
    t_final: float = Field(10.0, ge=0, description="Final temperature of the quench (K).")
    timestep_fs: float = Field(1.0, gt=0, description="Time step (fs).")
    gamma_lo: float = Field(2.5, gt=0, description="Collect frames with max γ above this.")
    gamma_hi: float = Field(30.0, gt=0, description="Stop a run when max γ exceeds this.")
    gamma_every: int = Field(10, ge=1, description="γ evaluation interval (steps).")
    collect_every_kelvin: float | None = Field(1000.0, description="Also keep a frame every this many K of cooling.")
    thermostat: Literal["nose-hoover", "bussi", "langevin"] = Field("bussi", description="Thermostat.")

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str) -> str:
        from mlipflow.registry import MD_ENGINES

        MD_ENGINES.check(v)
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.gamma_hi <= self.gamma_lo:
            raise ValueError(f"gamma_hi ({self.gamma_hi}) must be larger than gamma_lo ({self.gamma_lo})")
        return self


class SelectConfig(_Strict):
    """Selection: D-optimality (MaxVol) for ACE, ensemble force deviation with trust levels for DP."""

    max_structures: int = Field(500, ge=1, description="Maximum frames selected per iteration.")
    gamma_tolerance: float = Field(1.01, ge=1, description="MaxVol γ tolerance (ACE).")
    add_final_structures: bool = Field(False, description="Also label every final quenched structure (ACE).")
    min_contact: float | None = Field(
        0.5, gt=0, lt=1, description="ACE: frames whose closest pair is below this fraction of the sum of covalent "
        "radii are not selected (collapsed geometries of runaway explorations; null: keep every frame).")
    gamma_cap: float | None = Field(None, gt=1, description="ACE: candidates with max γ above this never enter MaxVol (None: no cap).")
    fill_to: int | None = Field(None, ge=1, description="ACE: repeat MaxVol on the frames not yet chosen until this many are chosen (each round D-optimal against the same active set); None: one pass.")
    max_label_force: float | None = Field(
        None, gt=0, description="Labels of selected frames with a force component above this (eV/Å) stay out of the "
        "dataset (recorded in the iteration's label_rejections); null: keep them. The label-efficiency benchmark "
        "found 30 eV/Å keeps MaxVol's force gain and removes most of its energy penalty.")
    f_trust_lo: float = Field(0.05, gt=0, description="DP: max force deviation (eV/Å) below which a frame is accurate.")
    f_trust_hi: float = Field(0.15, gt=0, description="DP: max force deviation (eV/Å) at and above which a frame failed (not labelled).")
    thin: bool = Field(False, description="DP: thin candidates by a diversity criterion before capping.")


class LoopConfig(_Strict):
    """Stopping rules."""

    max_iterations: int = Field(3, ge=0, description="Iteration limit (paper: 3).")
    min_relative_improvement: float = Field(0.0, description="Stop when the test force RMSE improves by less than this fraction.")
    accurate_ratio: float | None = Field(None, gt=0, le=1, description="DP: stop when this fraction of explored frames is accurate (DP-GEN's convergence, e.g. 0.95).")


class StabilityConfig(_Strict):
    """Final stability test: a large random cell at high temperature with the first and final potential."""

    enabled: bool = Field(True, description="Run the test.")
    atoms: int = Field(3003, ge=2, description="Atoms in the test cell (paper: 3003).")
    temperature: float = Field(5000.0, gt=0, description="Temperature (K).")
    ps: float = Field(10.0, gt=0, description="Duration (ps).")
    timestep_fs: float = Field(1.0, gt=0, description="Time step (fs).")
    max_force: float = Field(100.0, gt=0, description="A force above this (eV/Å) counts as unbounded.")
    max_energy_drift: float = Field(5.0, gt=0, description="A potential-energy change above this (eV/atom) counts as unbounded.")


class FixedTestSetConfig(_Strict):
    """A fixed independent test set, labelled once before the loop and never changed by it.

    Fresh random cells (not the training cells: seed + 50000) run with the reference labeler at
    each temperature; every frame goes to the test split of a test-only dataset version
    ``<dataset>-fixed-test``. Every potential of the campaign is evaluated on it.
    """

    enabled: bool = Field(True, description="Label the fixed test set and report every potential's errors on it.")
    structures: int = Field(2, ge=1, description="Fresh cells (spread over the composition grid).")
    temperatures: list[float] = Field([2000.0], min_length=1, description="MD temperatures (K); one run per cell and temperature.")
    steps: int = Field(60, ge=1, description="MD steps per run.")
    timestep_fs: float = Field(2.0, gt=0, description="Time step (fs).")
    every: int = Field(6, ge=1, description="Keep a frame every this many steps.")
    seed_offset: int = Field(50000, description="Cells use structures.seed + this (apart from the training cells).")

    @field_validator("temperatures")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(t <= 0 for t in v):
            raise ValueError(f"temperatures must be positive (got {v})")
        return v


class ValidationConfig(_Strict):
    """Validation of the campaign's final potential before production (``mlipflow potential validate``
    as a campaign step): errors per composition region on the fixed test set (else the dataset's
    test split), E–V curves of reference crystals against the labeler, and the final stability run's
    result; one ``validation`` document attached to the campaign (its report shows it)."""

    enabled: bool = Field(False, description="Validate the final potential at the end of the campaign.")
    crystals: list[str] = Field(["Na2O", "FeO", "NaFePO4-olivine"], description="Reference crystals (built-in names or structure files).")
    eos_strain: float = Field(0.06, gt=0, lt=0.3, description="Largest linear strain of the E–V curves.")
    eos_points: int = Field(7, ge=5, description="Volumes per E–V curve.")
    thresholds: dict[str, float] = Field(default_factory=dict, description=(
        "Limits above which a check is reported as a problem, over ValidationMaker.thresholds "
        "(force_rmse_eV_A 1.0, v0_error 0.05, b0_error 0.3)."))

    @field_validator("crystals")
    @classmethod
    def _crystals(cls, v: list[str]) -> list[str]:
        from mlipflow.engines.validation import check_crystal

        for c in v:
            check_crystal(c)
        return v


class ActiveLearningConfig(_Strict):
    """Parameters of the `nafepo4_al` flow."""

    labeler: str = Field("chgnet", description="Reference labeler: chgnet | emt | vasp:nafepo4_ace | module:Class.")
    structures: StructuresConfig = Field(default_factory=StructuresConfig)
    aimd: AIMDConfig = Field(default_factory=AIMDConfig)
    potential: Literal["ace", "dp"] = Field("ace", description="Potential kind: 'ace' (pacemaker, γ + MaxVol) or 'dp' (DeePMD-kit ensemble, force deviation).")
    fit: dict[str, Any] = Field(default_factory=lambda: {"preset": "paper"}, description="ACE: AceFitSettings fields plus 'preset' (paper|mini|tiny). DP: DPSettings fields plus 'preset' (tiny|lixfepo4_paper), 'ensemble', 'finetune' (checkpoint), 'model_branch'.")
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    stability: StabilityConfig = Field(default_factory=StabilityConfig)
    test_set: FixedTestSetConfig = Field(default_factory=FixedTestSetConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    reference_energies: dict[str, float] | None = Field(None, description="Isolated-atom energies (eV); None: computed by the labeler.")
    dataset_name: str | None = Field(None, description="Dataset name (default: the campaign name).")
    plots: bool = Field(True, description="Write summary plots into the campaign directory.")

    @field_validator("labeler")
    @classmethod
    def _labeler(cls, v: str) -> str:
        from mlipflow.engines.labelers import check_labeler

        check_labeler(v)
        return v
