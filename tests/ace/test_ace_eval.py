"""`mlipflow potential evaluate` and evaluate_potential on pickles and extxyz."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlipflow.engines.ace_eval import evaluate_potential
from mlipflow.errors import UserError


def test_evaluate_matches_fit_metrics(tiny_fit, emt_data, tmp_path):
    ev = evaluate_potential(tiny_fit.potential_yaml, emt_data["test"], plot=tmp_path / "p.png")
    assert ev.metrics.n_structures == 6
    assert ev.metrics.energy_rmse == pytest.approx(tiny_fit.test_metrics.energy_rmse, rel=1e-9)
    assert ev.metrics.force_rmse == pytest.approx(tiny_fit.test_metrics.force_rmse, rel=1e-9)
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_reference_energies_and_extxyz(tiny_fit, emt_data, tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    refs = {"Cu": -1.5, "Al": -0.7}
    df = pd.read_pickle(emt_data["test"], compression="gzip")
    shifted = df.copy()
    shifted["energy"] = [e + sum(refs[s] for s in at.get_chemical_symbols())
                         for e, at in zip(df["energy_corrected"], df["ase_atoms"])]
    shifted = shifted.drop(columns=["energy_corrected"])
    p = tmp_path / "noec.pkl.gz"
    shifted.to_pickle(p, compression="gzip")
    base = evaluate_potential(tiny_fit.potential_yaml, emt_data["test"]).metrics
    with_refs = evaluate_potential(tiny_fit.potential_yaml, p, reference_energies=refs).metrics
    assert with_refs.energy_rmse == pytest.approx(base.energy_rmse, rel=1e-9)
    total = evaluate_potential(tiny_fit.potential_yaml, p)  # total energies per atom: large offset
    assert total.energy_kind == "energy" and total.metrics.energy_rmse > 0.5
    frames = []
    for at, e, f in zip(df["ase_atoms"], df["energy"], df["forces"]):
        a = at.copy()
        a.calc = SinglePointCalculator(a, energy=e, forces=np.asarray(f))
        frames.append(a)
    xyz = tmp_path / "d.extxyz"
    write(xyz, frames)
    m = evaluate_potential(tiny_fit.potential_yaml, xyz).metrics
    assert m.force_rmse == pytest.approx(base.force_rmse, rel=1e-6)


def test_cli_evaluate(tiny_fit, emt_data, tmp_path):
    from mlipflow.cli.main import main

    out = tmp_path / "m.json"
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({"Cu": 0.0, "Al": 0.0}))
    rc = main(["potential", "evaluate", tiny_fit.potential_yaml, str(emt_data["test"]), "--json", str(out),
               "--reference-energies", str(refs), "--no-progress"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["metrics"]["n_structures"] == 6 and data["metrics"]["force_rmse"] > 0
    assert data["plot"] and (tmp_path / "m.png").exists()


def test_cli_bad_input_exits_2(tiny_fit, tmp_path, capsys):
    from mlipflow.cli.main import main

    bad = tmp_path / "bad.pkl.gz"
    bad.write_text("not a pickle")
    assert main(["potential", "evaluate", tiny_fit.potential_yaml, str(bad)]) == 2
    assert main(["potential", "evaluate", tiny_fit.potential_yaml, str(tmp_path / "missing.pkl.gz")]) == 2
    assert main(["potential", "evaluate", str(tmp_path / "nope.yaml"), str(bad)]) == 2
    assert "error" in capsys.readouterr().err


def test_element_not_in_potential(tiny_fit, tmp_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    at = bulk("Ni", "fcc", a=3.5)
    at.calc = EMT()
    at.get_potential_energy()
    with pytest.raises(UserError, match="elements"):
        evaluate_potential(tiny_fit.potential_yaml, [at])
