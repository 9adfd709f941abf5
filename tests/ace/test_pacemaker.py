"""pacemaker fits (real pacemaker, tiny settings, one shared fit per session)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlipflow.engines.pacemaker import PAPER_FS_PARAMETERS, AceFitSettings, fit_ace, fit_input_hash, potential_doc
from mlipflow.errors import UserError


def test_paper_defaults_render():
    s = AceFitSettings()
    d = s.render("train.pkl.gz", "test.pkl.gz", ["Na", "Fe", "P", "O"])
    pot, fit = d["potential"], d["fit"]
    assert pot["elements"] == ["Fe", "Na", "O", "P"]
    assert pot["bonds"]["ALL"]["rcut"] == 6.5 and pot["bonds"]["ALL"]["radbase"] == "SBessel"
    emb = pot["embeddings"]["ALL"]
    assert emb["npot"] == "FinnisSinclairShiftedScaled" and emb["ndensity"] == 8
    assert emb["fs_parameters"] == [float(x) for x in PAPER_FS_PARAMETERS]
    assert pot["functions"]["ALL"] == {"nradmax_by_orders": [15, 3, 2, 1], "lmax_by_orders": [0, 4, 2, 0]}
    assert pot["functions"]["number_of_functions_per_element"] == 250
    assert fit["ladder_type"] == "power_order" and fit["optimizer"] == "BFGS" and fit["maxiter"] == 2000
    assert fit["repulsion"] == "auto" and "kappa" in fit["loss"]
    assert "min_relative_train_loss_per_iter" in fit and "min_relative_test_loss_per_iter" not in fit
    # the test set is evaluated by mlipflow after the fit, not by pacemaker during it (unless asked)
    assert d["data"] == {"filename": "train.pkl.gz"}
    assert AceFitSettings(pacemaker_test=True).render("train.pkl.gz", "test.pkl.gz", ["Na"])["data"] == \
        {"filename": "train.pkl.gz", "test_filename": "test.pkl.gz"}
    # YAML text round-trips to the same dict
    assert yaml.safe_load(s.render_yaml("train.pkl.gz", "test.pkl.gz", ["Na", "Fe", "P", "O"])) == d


def test_settings_reject_broken_options():
    with pytest.raises(ValueError, match="min_relative_test_loss_per_iter"):
        AceFitSettings(extra_fit={"min_relative_test_loss_per_iter": 1e-5})
    with pytest.raises(ValueError, match="fs_parameters"):
        AceFitSettings(ndensity=2)
    warm = AceFitSettings.tiny(ladder_step=[5, 0.5]).render("a", None, ["Cu"], warm_start="prev.yaml",
                                                           use_reference_energy=True)
    # warm start = continue fitting the previous potential (pacemaker `potential: prev.yaml`), no ladder
    assert warm["potential"] == "prev.yaml" and "ladder_step" not in warm["fit"]
    assert "test_filename" not in warm["data"]
    # refits may run fewer iterations than the fit from scratch
    short = AceFitSettings.tiny(maxiter=40, warm_start_maxiter=10)
    assert short.render("a", None, ["Cu"], warm_start="prev.yaml")["fit"]["maxiter"] == 10
    assert short.render("a", None, ["Cu"])["fit"]["maxiter"] == 40
    assert AceFitSettings.tiny(maxiter=40).render("a", None, ["Cu"], warm_start="prev.yaml")["fit"]["maxiter"] == 40


def test_tiny_fit_outputs(tiny_fit):
    r = tiny_fit
    for p in (r.potential_yaml, r.potential_yace, r.active_set):
        assert Path(p).is_file() and Path(p).stat().st_size > 0
    assert r.elements == ["Al", "Cu"]
    for m in (r.train_metrics, r.test_metrics):
        assert m.energy_rmse is not None and 0 < m.energy_rmse < 0.5
        assert 0 < m.force_rmse < 2.0 and m.force_mae <= m.force_rmse
        assert m.energy_mae <= m.energy_rmse
    assert r.train_metrics.n_structures == 30 and r.test_metrics.n_structures == 6
    assert all(Path(p).is_file() for p in r.plots.values()) and set(r.plots) == {"train_parity", "test_parity"}
    # the .asi is pyace's npz with one matrix per element
    from pyace.activelearning import load_active_inverse_set

    asi = load_active_inverse_set(r.active_set)
    assert len(asi) == 2 and all(v.shape[0] == v.shape[1] for v in asi.values())


def test_fit_cache_and_hash(tiny_fit, emt_data):
    again = fit_ace(emt_data["train"], emt_data["test"], AceFitSettings.tiny(), tiny_fit.workdir, progress=False)
    assert again.cached and again.input_hash == tiny_fit.input_hash
    other = fit_input_hash(emt_data["train"], emt_data["test"], AceFitSettings.tiny(maxiter=41))
    assert other != tiny_fit.input_hash
    swapped = fit_input_hash(emt_data["test"], emt_data["train"], AceFitSettings.tiny())
    assert swapped != tiny_fit.input_hash


def test_potential_doc_blobs_roundtrip(tiny_fit, tmp_path):
    doc = potential_doc(tiny_fit, name="tiny")
    assert doc.kind == "ace" and doc.has_active_set and doc.input_hash == tiny_fit.input_hash
    assert "output_potential.yaml" in doc.files and "output_potential.asi.b64" in doc.files
    raw = base64.b64decode(doc.files["output_potential.asi.b64"])
    assert raw == Path(tiny_fit.active_set).read_bytes()
    from mlipflow.engines.potentials import write_blobs

    written = write_blobs(doc, tmp_path)
    assert Path(written["active_set"]).read_bytes() == raw
    assert doc.test_metrics.force_rmse == tiny_fit.test_metrics.force_rmse
    # JSON round trip of the whole document
    from mlipflow.schemas import PotentialDoc

    assert PotentialDoc.model_validate_json(doc.model_dump_json()).files == doc.files


def test_missing_energy_is_user_error(emt_data, tmp_path):
    import pandas as pd

    df = pd.read_pickle(emt_data["train"], compression="gzip").drop(columns=["energy", "energy_corrected"])
    bad = tmp_path / "bad.pkl.gz"
    df.to_pickle(bad, compression="gzip")
    with pytest.raises(UserError, match="energy"):
        fit_ace(bad, None, AceFitSettings.tiny(), tmp_path / "fit", progress=False)


def test_numpy_24_is_user_error(emt_data, tmp_path, monkeypatch):
    """numpy 2.4 is not installed here (it breaks pacemaker); the version string is patched."""
    monkeypatch.setattr(np, "__version__", "2.4.0")
    with pytest.raises(UserError, match="numpy"):
        fit_ace(emt_data["train"], None, AceFitSettings.tiny(), tmp_path / "fit", progress=False)


def test_no_output_potential_is_clear_error(emt_data, tmp_path):
    """A pacemaker that exits 0 without output_potential.yaml (what test-loss early stopping does)
    is stood in for by `true`."""
    with pytest.raises(RuntimeError, match="output_potential.yaml"):
        fit_ace(emt_data["train"], None, AceFitSettings.tiny(), tmp_path / "fit", progress=False, cmd="true")


def test_warm_start_fit(tiny_fit, emt_data, tmp_path):
    """Continue from the session's potential for a few iterations: the hash records the warm start,
    and the errors start from the previous fit's level, not from scratch."""
    r = fit_ace(emt_data["train"], emt_data["test"], AceFitSettings.tiny(maxiter=5), tmp_path / "warm",
                warm_start=tiny_fit.potential_yaml, progress=False)
    assert r.warm_start_hash and r.input_hash != tiny_fit.input_hash
    assert Path(r.potential_yaml).is_file() and Path(r.active_set).is_file()
    assert r.train_metrics.force_rmse < 1.5 * tiny_fit.train_metrics.force_rmse
    from mlipflow.schemas import PotentialRef

    doc = potential_doc(r, warm_start_from=PotentialRef(kind="ace", input_hash=tiny_fit.input_hash))
    assert doc.warm_start_from.input_hash == tiny_fit.input_hash


def test_potential_digest_ignores_pacemaker_metadata(tiny_fit, tmp_path):
    """A refit's cache key holds the warm start's digest: the start time and user that pacemaker writes
    into the YAML must not change it (two identical runs gave different keys), its numbers must."""
    from mlipflow.engines.pacemaker import file_digest, potential_digest

    text = Path(tiny_fit.potential_yaml).read_text()
    assert text.startswith("metadata:") and "starttime" in text
    other = tmp_path / "other.yaml"
    other.write_text(text.replace("starttime:", "starttime: 1999-01-01 00:00:00.0\n  old_starttime:", 1))
    assert file_digest(other) != file_digest(tiny_fit.potential_yaml)
    assert potential_digest(other) == potential_digest(tiny_fit.potential_yaml)
    changed = tmp_path / "changed.yaml"
    import re

    changed.write_text(re.sub(r"radcoefficients: \[\[\[([-0-9.e]+)",
                              lambda m: f"radcoefficients: [[[{float(m.group(1)) + 1e-6!r}", text, count=1))
    assert changed.read_text() != text and potential_digest(changed) != potential_digest(tiny_fit.potential_yaml)
