"""Crystal densities: the offline table, the lookup rule, the mixing rule and the MP path.

The Materials Project cannot be reached from here: the MP test injects a fake ``mp_api.client``
module (the only mock) to check the selection rule and that the key is never printed.
"""

import logging
import sys
import types

import pytest

from mlipflow.errors import UserError
from mlipflow.generation.density import (
    crystallographic_density,
    density_table,
    estimate_density,
    mixing_rule_density,
)


def test_table_values_match_their_lattice_parameters_and_cite_a_source():
    table = density_table()
    needed = {"Na2O", "FeO", "Fe2O3", "P2O5", "NaPO3", "Na4P2O7", "Na3PO4", "NaFePO4", "FePO4", "LiFePO4",
              "Li3PO4", "Li2O", "Fe3(PO4)2"}
    assert needed <= {e["formula"] for e in table}
    for e in table:
        assert e["source"] and 1.5 < e["density"] < 6.5
        if e["method"] == "crystallographic":
            lat = e["lattice"]
            rho = crystallographic_density(e["formula"], e["Z"], lat["a"], lat["b"], lat["c"],
                                           lat["alpha"], lat["beta"], lat["gamma"])
            assert abs(rho - e["density"]) < 2e-3, e["formula"]
    # two NaFePO4 polymorphs: the stable one (maricite) is the exact match
    assert sum(e["formula"] == "NaFePO4" for e in table) == 2


def test_lookup_rule_exact_then_same_elements(mlipflow_home):
    r = estimate_density("NaFePO4")
    assert r.method == "exact" and "maricite" in r.source and abs(r.density - 3.70) < 0.02
    with pytest.raises(UserError, match="no crystal density known"):
        estimate_density("Fe4Na2")  # no crystal with exactly {Na, Fe} in the table, no units to mix
    table = density_table()
    nfpo = [e["density"] for e in table if _els(e["formula"]) == {"Na", "Fe", "P", "O"}]
    r = estimate_density("Na6Fe3P8O29")
    assert r.method == "same_elements" and abs(r.density - sum(nfpo) / len(nfpo)) < 1e-9
    assert len(r.matches) == len(nfpo) and all(m["citation"] for m in r.matches)


def _els(formula):
    from pymatgen.core import Composition

    return {str(e) for e in Composition(formula).elements}


def test_mixing_rule_and_user_density(mlipflow_home):
    r = mixing_rule_density(["Na2O", "FeO"], [0.5, 0.5])
    m1, m2 = 61.979, 71.844
    rho1 = estimate_density("Na2O").density
    rho2 = estimate_density("FeO").density
    expect = (0.5 * m1 + 0.5 * m2) / (0.5 * m1 / rho1 + 0.5 * m2 / rho2)
    assert r.source == "mixing_rule" and abs(r.density - expect) < 2e-3
    # Na-Fe-O has no crystal in the table: estimate_density falls back to the mixing rule
    r2 = estimate_density("Na2FeO2", ["Na2O", "FeO"], [0.5, 0.5])
    assert r2.method == "mixing_rule" and abs(r2.density - r.density) < 1e-9
    with pytest.raises(UserError, match="no crystal density known"):
        estimate_density("Na2FeO2")
    assert estimate_density("Na2FeO2", density=3.1).source == "user"
    with pytest.raises(UserError):
        estimate_density("NaFePO4", density=-1.0)


def test_materials_project_path_with_fake_client(mlipflow_home, monkeypatch, caplog):
    from mlipflow.generation import density as dmod
    from mlipflow.settings import get_settings

    secret = "SECRET-KEY-1234567890"
    monkeypatch.setenv("MLIPFLOW_MP_API_KEY", secret)
    get_settings.cache_clear()
    dmod._mp_entries.cache_clear()
    seen = {}

    class Doc:
        def __init__(self, mid, f, rho, eh):
            self.material_id, self.formula_pretty, self.density, self.energy_above_hull = mid, f, rho, eh

    class FakeRester:
        def __init__(self, key):
            seen["key"] = key
            self.materials = types.SimpleNamespace(summary=types.SimpleNamespace(search=self.search))

        def search(self, chemsys, fields):
            seen["chemsys"] = chemsys
            return [Doc("mp-1", "NaFePO4", 3.60, 0.0), Doc("mp-2", "NaFePO4", 3.50, 0.02),
                    Doc("mp-3", "Na2FeP2O7", 3.10, 0.0), Doc("mp-4", "NaFe(PO3)3", 9.9, 0.5)]

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    mod = types.ModuleType("mp_api.client")
    mod.MPRester = FakeRester
    monkeypatch.setitem(sys.modules, "mp_api", types.ModuleType("mp_api"))
    monkeypatch.setitem(sys.modules, "mp_api.client", mod)
    with caplog.at_level(logging.DEBUG):
        r = estimate_density("NaFePO4")
        assert r.source == "materials_project:mp-1" and r.density == 3.60  # lowest E_hull
        r = estimate_density("Na2Fe2P3O11")
        # same elements: mean of the entries within 0.1 eV/atom of the hull (mp-4 excluded)
        assert r.method == "same_elements" and abs(r.density - (3.60 + 3.50 + 3.10) / 3) < 1e-9
    assert seen["key"] == secret and seen["chemsys"] == "Fe-Na-O-P"
    assert secret not in caplog.text
    dmod._mp_entries.cache_clear()
    get_settings.cache_clear()


def test_key_without_mp_api_falls_back_to_table(mlipflow_home, monkeypatch, caplog, capsys):
    from mlipflow.generation import density as dmod
    from mlipflow.settings import get_settings

    if "mp_api" in sys.modules:
        pytest.skip("mp-api installed")
    secret = "ANOTHER-SECRET-987"
    monkeypatch.setenv("MLIPFLOW_MP_API_KEY", secret)
    get_settings.cache_clear()
    dmod._mp_entries.cache_clear()
    with caplog.at_level(logging.WARNING):
        r = estimate_density("LiFePO4")
    assert r.source.startswith("table:") and "mp-api is not installed" in caplog.text
    assert secret not in caplog.text and secret not in capsys.readouterr().err
    dmod._mp_entries.cache_clear()
    get_settings.cache_clear()
