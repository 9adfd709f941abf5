"""Bad inputs across every command and campaign section: each exits 2 with one `error:` line and
one `fix:` line, no traceback, and leaves the store as it was.

The commands run in-process (``mlipflow.cli.main.main``) against a real embedded store on disk
that already holds a campaign's documents. The unreachable-MongoDB case points at a closed port
of this machine (no MongoDB server can run here; the client's real connection error is used).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EX = ROOT / "examples"


def _campaign(name: str, old: str, new: str, src: str = "al_tiny_emt.yaml") -> tuple[str, str]:
    text = (EX / src).read_text()
    assert old in text, (src, old)
    return name, text.replace(old, new)


#: Files a case may name as {tmp}/<name>.
FILES: dict[str, str] = dict([
    ("ok.dump", "ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS pp pp pp\n0 10\n0 10\n0 10\n"
                "ITEM: ATOMS id type x y z\n1 1 0 0 0\n2 2 1 1 1\n"),
    ("garbage.xyz", "this is not a structure\n"),
    ("notes.txt", "T,D\n"),
    ("one_point.csv", "T,D,sigma\n900,1e-5,1e-6\n"),
    ("no_column.csv", "temperature,foo\n300,1\n400,2\n500,3\n"),
    ("syntax.yaml", "name: x\nflow: nafepo4_al\nparameters: {labeler: emt\n"),
    ("noflow.yaml", "name: x\nflow: no_such_flow\nparameters: {}\n"),
    ("noname.yaml", "flow: nafepo4_al\nparameters: {}\n"),
    ("settings_bad.yaml", "database: {uri: 'http://example.org'}\n"),
    ("settings_key.yaml", "databse: {uri: 'mongodb://localhost'}\n"),
    _campaign("labeler.yaml", "labeler: emt", "labeler: emtx"),
    _campaign("gamma.yaml", "gamma_lo: 1.5, gamma_hi: 50", "gamma_lo: 5, gamma_hi: 2"),
    _campaign("typo.yaml", "max_iterations: 2", "max_iteration: 2"),
    _campaign("engine.yaml", "explore: {", "explore: {engine: gromacs, "),
    _campaign("preset.yaml", "fit: {preset: tiny}", "fit: {preset: huge}"),
    _campaign("units.yaml", "units: [Cu, Al]", "units: [Cu, Xq]"),
    _campaign("atoms.yaml", "atoms: 16", "atoms: -3"),
    ("category.yaml", (EX / "al_tiny_emt.yaml").read_text() + "categories: {gpu: h100}\n"),
    _campaign("glass_pot.yaml", "potential: pedone2006", "potential: pedone2099", "nafepo4_glass_mini.yaml"),
    _campaign("glass_engine.yaml", "engine: lammps}", "engine: gromacs}", "nafepo4_glass_mini.yaml"),
    _campaign("glass_heating.yaml", "heating: [nvt, npt]", "heating: [nvt, nph]", "nafepo4_glass_mini.yaml"),
    _campaign("glass_temps.yaml", "temperatures: [900, 1200, 1500]", "temperatures: [-900]",
              "nafepo4_glass_mini.yaml"),
])


def _lfp_bad_ordering() -> str:
    text = (EX / "lfp_md_mini.yaml").read_text()
    m = re.search(r"orderings: \[([^\]]*)\]", text)
    assert m, "lfp_md_mini.yaml names its orderings"
    return text.replace(m.group(0), "orderings: [D1, z-order]")


FILES["lfp_ordering.yaml"] = _lfp_bad_ordering()

CLOSED_PORT = "mongodb://user:s3cret-pw@127.0.0.1:9/mlipflow"

#: (case id, argv with {tmp}, extra environment, text the error line must contain)
CASES: list[tuple[str, list[str], dict, str]] = [
    # campaign files
    ("run: missing file", ["run", "{tmp}/nope.yaml"], {}, "nope.yaml"),
    ("run: YAML syntax", ["run", "{tmp}/syntax.yaml"], {}, "yaml"),
    ("run: unknown flow", ["run", "{tmp}/noflow.yaml"], {}, "no_such_flow"),
    ("run: no name", ["run", "{tmp}/noname.yaml"], {}, "name"),
    ("campaign: unknown labeler", ["run", "{tmp}/labeler.yaml"], {}, "emtx"),
    ("campaign: gamma_lo > gamma_hi", ["run", "{tmp}/gamma.yaml"], {}, "gamma"),
    ("campaign: misspelt key", ["run", "{tmp}/typo.yaml"], {}, "max_iteration"),
    ("campaign: unknown engine", ["run", "{tmp}/engine.yaml"], {}, "gromacs"),
    ("campaign: unknown fit preset", ["run", "{tmp}/preset.yaml"], {}, "huge"),
    ("campaign: unknown element", ["run", "{tmp}/units.yaml"], {}, "Xq"),
    ("campaign: negative atoms", ["run", "{tmp}/atoms.yaml"], {}, "atoms"),
    ("campaign: category with no worker", ["run", "{tmp}/category.yaml"],
     {"MLIPFLOW_CATEGORIES": '{"cpu": "cpu", "gpu": "gpu", "light": "light"}'}, "h100"),
    ("glass: unknown potential", ["run", "{tmp}/glass_pot.yaml"], {}, "pedone2099"),
    ("glass: unknown engine", ["run", "{tmp}/glass_engine.yaml"], {}, "gromacs"),
    ("glass: unknown heating", ["run", "{tmp}/glass_heating.yaml"], {}, "nph"),
    ("glass: negative temperature", ["run", "{tmp}/glass_temps.yaml"], {}, "temperature"),
    ("lfp: unknown ordering", ["run", "{tmp}/lfp_ordering.yaml"], {}, "z-order"),
    # settings and the database
    ("settings: non-Mongo URI", ["query"], {"MLIPFLOW_DATABASE__URI": "http://example.org"}, "mongodb://"),
    ("settings: unknown key in file", ["config"], {"MLIPFLOW_CONFIG": "{tmp}/settings_key.yaml"}, "databse"),
    ("settings: exec_configs for an unknown code", ["config"], {"MLIPFLOW_EXEC_CONFIGS": '{"lmp": "lammps_kokkos"}'},
     "lmp"),
    ("database: unreachable", ["query"], {"MLIPFLOW_DATABASE__URI": CLOSED_PORT, "MLIPFLOW_DATABASE__TIMEOUT_S": "1"},
     "cannot reach"),
    # store commands
    ("show: unknown id", ["show", "0123456789abcdef"], {}, "0123456789abcdef"),
    ("query: bad filter", ["query", "--filter", "{not json"], {}, "filter"),
    ("dataset show: unknown", ["dataset", "show", "no-such-set"], {}, "no-such-set"),
    ("dataset export: unknown format", ["dataset", "export", "no-such-set", "--format", "xyzzy", "--out", "{tmp}/o"],
     {}, "xyzzy"),
    ("dataset import: missing path", ["dataset", "import", "{tmp}/nothing", "--dataset", "d"], {}, "nothing"),
    # generate / label
    ("generate: atoms unreachable", ["generate", "amorphous", "--atoms", "5", "--out", "{tmp}/cells"], {}, "atoms=5"),
    ("generate: unknown unit element", ["generate", "amorphous", "--units", "Na2O,Qq2O", "--out", "{tmp}/cells"], {},
     "Qq"),
    ("generate: unknown option", ["generate", "amorphous", "--formula", "NaFePO4", "--out", "{tmp}/c"], {},
     "--formula"),
    ("generate olivine: x out of range", ["generate", "olivine", "--x", "1.5", "--out", "{tmp}/o.extxyz"], {}, "1.5"),
    ("generate olivine: bad supercell", ["generate", "olivine", "--supercell", "1,2", "--out", "{tmp}/o.extxyz"], {},
     "supercell"),
    ("label: unknown labeler", ["label", "--labeler", "nosuch", "{tmp}/ok.dump"], {}, "nosuch"),
    ("label: not a structure", ["label", "--labeler", "emt", "{tmp}/garbage.xyz"], {}, "garbage.xyz"),
    # potentials
    ("potential evaluate: missing file", ["potential", "evaluate", "{tmp}/no.yace", "{tmp}/no.pkl.gz"], {}, "no.yace"),
    ("potential fit: unknown dataset", ["potential", "fit", "no-such-set"], {}, "no-such-set"),
    ("potential distil: unknown pool", ["potential", "distil", "no-such-pool", "--test", "no-such-test"], {},
     "no-such-pool"),
    ("potential distil: strategy of another kind", ["potential", "distil", "p", "--test", "t", "--kind", "dp",
                                                    "--strategy", "maxvol"], {}, "maxvol"),
    ("potential validate: unknown crystal", ["potential", "validate", "pedone2006", "--crystal", "Na3PO4-gamma"], {},
     "Na3PO4-gamma"),
    ("potential validate: missing trajectory", ["potential", "validate", "pedone2006", "--trajectory", "{tmp}/none.dump"],
     {}, "none.dump"),
    ("potential validate: no uncertainty", ["potential", "validate", "pedone2006", "--trajectory", "{tmp}/ok.dump"], {},
     "uncertainty"),
    # analysis
    ("analyze diffusion: no --timestep", ["analyze", "diffusion", "{tmp}/ok.dump"], {}, "--timestep"),
    ("analyze structure: missing file", ["analyze", "structure", "{tmp}/none.dump"], {}, "none.dump"),
    ("analyze structure: bad cutoff", ["analyze", "structure", "{tmp}/ok.dump", "--types", "1=Na,2=O", "--cutoff",
                                       "Na-O"], {}, "Na-O"),
    ("analyze arrhenius: one point", ["analyze", "arrhenius", "{tmp}/one_point.csv"], {}, "2"),
    ("analyze tg: missing column", ["analyze", "tg", "{tmp}/no_column.csv"], {}, "column"),
    ("analyze polarons: no Fe", ["analyze", "polarons", "{tmp}/ok.dump", "--types", "1=Li,2=O"], {}, "Fe"),
]


def prepare(argv: list[str], tmp: Path) -> list[str]:
    for name, text in FILES.items():
        p = tmp / name
        if not p.exists():
            p.write_text(text)
    return [a.replace("{tmp}", str(tmp)) for a in argv]


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """An embedded store holding documents (a tiny flow's outputs) that no bad input may touch."""
    from jobflow import Flow, job
    from jobflow.managers.local import run_locally

    from mlipflow.settings import get_settings
    from mlipflow.store import job_store

    home = tmp_path_factory.mktemp("bad") / "home"
    old = {k: os.environ.get(k) for k in ("MLIPFLOW_HOME", "HOME", "MLIPFLOW_CONFIG")}
    os.environ.update(MLIPFLOW_HOME=str(home), HOME=str(home.parent))
    os.environ.pop("MLIPFLOW_CONFIG", None)
    get_settings.cache_clear()

    @job
    def add(a, b):
        return {"type": "sum", "value": a + b}

    j = add(1, 2)
    run_locally(Flow([j]), store=job_store(), create_folders=False, log=False)
    yield home
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    get_settings.cache_clear()


def _store_snapshot(home: Path) -> dict[str, str]:
    """Every collection of the embedded store: the hash of all its documents (any write shows)."""
    import hashlib
    import json

    from montydb import MontyClient

    client = MontyClient(str(home / "data" / "store"))
    db = client["mlipflow"]
    out = {}
    for name in sorted(db.list_collection_names()):
        docs = sorted(json.dumps(d, sort_keys=True, default=str) for d in db[name].find({}))
        out[name] = hashlib.sha256("\n".join(docs).encode()).hexdigest()
    client.close()
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, populated, tmp_path, monkeypatch):
    import mlipflow.cli.main as cli
    from mlipflow.settings import get_settings

    name, argv, env, expect = case
    argv = prepare(argv, tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v.replace("{tmp}", str(tmp_path)))
    get_settings.cache_clear()
    before = _store_snapshot(populated)
    err = io.StringIO()
    monkeypatch.setattr(cli.err_console, "file", err)
    monkeypatch.setattr(cli.err_console, "width", 200)
    try:
        rc = cli.main(argv)
    finally:
        get_settings.cache_clear()
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert rc == 2, (name, rc, text)
    assert "Traceback" not in text, text
    errors = [ln for ln in lines if ln.startswith("error:")]
    fixes = [ln for ln in lines if ln.lstrip().startswith("fix:")]
    assert len(errors) == 1 and fixes, text
    assert expect.lower() in text.lower(), (expect, text)
    assert "s3cret-pw" not in text
    assert _store_snapshot(populated) == before, "a refused command changed the store"
