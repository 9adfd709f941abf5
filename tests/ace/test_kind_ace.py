"""The ACE potential kind: by path and by stored document, calculator, γ and pair blocks."""

from __future__ import annotations

import numpy as np


def test_ace_kind_from_store_and_from_path(mlipflow_home, tiny_fit, emt_data):
    """The same potential by path and by stored document: same canonical files, same energies, γ."""
    from mlipflow.engines.pacemaker import potential_doc
    from mlipflow.engines.potentials import calculator, materialize, ref_from_path

    by_path = materialize(ref_from_path(tiny_fit.potential_yaml))
    by_doc = materialize(potential_doc(tiny_fit))
    for pot in (by_path, by_doc):
        assert {p.name for p in pot.files.values()} >= {"potential.yaml", "potential.asi"}
    at = emt_data["items"][0][0].copy()
    energies = []
    for spec in (by_path.ref, potential_doc(tiny_fit), tiny_fit.potential_yaml):
        at.calc = calculator(spec, uncertainty=True)
        energies.append(at.get_potential_energy())
        assert by_path.uncertainty_of(at) > 0
    assert np.allclose(energies, energies[0])
    lines = by_doc.lammps_pair(kokkos=True, uncertainty=True).lines
    assert "pair_style pace/extrapolation/kk" in lines
    plain = by_doc.lammps_pair(uncertainty=False)
    assert plain.lines[1] == "pair_style pace product" and plain.lines[2] == "pair_coeff * * potential.yace Al Cu"
