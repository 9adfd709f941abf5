"""DPSettings -> input.json: presets, numb_steps from epochs, the paper's learning-rate schedule
checked with DeePMD-kit's own schedule class, multi-task rendering, MSON round trip."""

from __future__ import annotations

import math

import pytest


def _schedule(cfg):
    from deepmd.dpmodel.utils.learning_rate import BaseLR

    return BaseLR(**{**cfg["learning_rate"], "num_steps": cfg["training"]["numb_steps"]})


def test_paper_preset_schedule_reproduces_the_published_numbers(tmp_path):
    """1570 frames, 120 epochs, batch 1 -> 188 400 steps; lr 1e-3 decays by 0.526 every 11750
    steps, 16 decays, down to 3.51e-8 (DeePMD-kit's LearningRateExp evaluates the rendered block)."""
    from mlipflow.engines.deepmd import DPSettings

    s = DPSettings.lixfepo4_paper()
    assert s == DPSettings()  # the defaults are the paper's
    cfg = s.render([tmp_path / "train"], [tmp_path / "test"], ["Li", "Fe", "P", "O"], n_frames=1570)
    tr = cfg["training"]
    assert tr["numb_steps"] == 188400 and "120 epochs x 1570 frames / batch 1" in tr["_numb_steps_from"]
    assert tr["training_data"]["batch_size"] == 1
    assert cfg["loss"] == {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1.0, "start_pref_f": 1000.0,
                           "limit_pref_f": 1.0, "start_pref_v": 0.0, "limit_pref_v": 0.0}
    lr = cfg["learning_rate"]
    assert lr == {"type": "exp", "start_lr": 1e-3, "stop_lr": 3.51e-8, "decay_steps": 11750, "decay_rate": 0.526}
    sched = _schedule(cfg)
    assert float(sched.value(0)) == pytest.approx(1e-3)
    values = [float(sched.value(k * 11750)) for k in range(17)]
    assert len({round(math.log(v), 9) for v in values}) == 17           # a new value at each of 16 decays
    assert float(sched.value(15 * 11750)) == pytest.approx(1e-3 * 0.526 ** 15, rel=1e-9)
    assert float(sched.value(16 * 11750)) == pytest.approx(3.51e-8, rel=1e-9)  # 1e-3 * 0.526**16 clipped at stop_lr
    assert float(sched.value(tr["numb_steps"] - 1)) == pytest.approx(3.51e-8, rel=1e-9)
    assert (tr["numb_steps"] - 1) // lr["decay_steps"] == 16
    assert cfg["model"]["type_map"] == ["Li", "Fe", "P", "O"] and cfg["model"]["descriptor"]["type"] == "dpa2"


def test_numb_steps_and_tiny_preset(tmp_path):
    from mlipflow.engines.deepmd import DPSettings

    s = DPSettings.mini()
    assert s.steps_for(250) == 20 * 250 and s.render([tmp_path], None, ["Al"], 250)["training"]["numb_steps"] == 5000
    assert DPSettings(epochs=3, batch_size=4).steps_for(10) == 8  # ceil(3 * 10 / 4)
    tiny = DPSettings.tiny().render([tmp_path / "a"], None, ["Al", "Cu"], 40, seed=7)
    assert tiny["model"]["descriptor"]["type"] == "se_e2_a" and tiny["model"]["descriptor"]["seed"] == 7
    assert tiny["training"]["numb_steps"] == 150 and "validation_data" not in tiny["training"]
    sched = _schedule(tiny)  # 16 decays down to stop_lr
    assert float(sched.value(149)) == pytest.approx(5e-5, rel=0.35)
    with pytest.raises(ValueError, match="epochs or numb_steps"):
        DPSettings(epochs=None, numb_steps=None)
    from mlipflow.errors import UserError

    with pytest.raises(UserError, match="unknown DeePMD preset"):
        DPSettings.preset("huge")
    assert DPSettings.preset("paper") == DPSettings.lixfepo4_paper()
    merged = DPSettings.tiny(extra={"training": {"disp_freq": 3}}).render([tmp_path], None, ["Al"], 4)
    assert merged["training"]["disp_freq"] == 3 and merged["training"]["numb_steps"] == 150


def test_multitask_render_and_mson_round_trip(tmp_path):
    from monty.json import MontyDecoder, MontyEncoder

    from mlipflow.engines.deepmd import DPSettings
    from mlipflow.errors import UserError

    s = DPSettings.tiny_dpa2(numb_steps=10)
    cfg = s.render_multitask({"A": ([tmp_path / "a"], None), "B": ([tmp_path / "b"], [tmp_path / "bv"])},
                             ["Al", "Cu", "Ni"], {"A": 30, "B": 10})
    assert set(cfg["model"]["model_dict"]) == {"A", "B"} and cfg["model"]["shared_dict"]["type_map_all"] == ["Al", "Cu", "Ni"]
    assert cfg["training"]["model_prob"] == {"A": 0.75, "B": 0.25} and set(cfg["loss_dict"]) == {"A", "B"}
    assert "validation_data" in cfg["training"]["data_dict"]["B"]
    with pytest.raises(UserError, match="at least two heads"):
        s.render_multitask({"A": ([tmp_path], None)}, ["Al"], {"A": 1})
    back = MontyDecoder().decode(MontyEncoder().encode(s))  # as a maker field through FireWorks specs
    assert isinstance(back, DPSettings) and back == s
