"""`mlipflow md run PROTOCOL --potential REF --structure FILE`: one MD run without a campaign file,
stored like the flows' runs (real LAMMPS, the Pedone rigid-ion set)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _cli(args, env, cwd):
    return subprocess.run([sys.executable, "-m", "mlipflow.cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=600)


@pytest.mark.slow
def test_md_run_stores_its_document_and_a_rerun_reads_it_back(tmp_path, campaign_tools):
    campaign_env, _ = campaign_tools
    env = campaign_env(tmp_path / "home")
    cell = tmp_path / "y.extxyz"
    assert _cli(["generate", "olivine", "--config", "y-order", "--supercell", "1,2,2", "--out", str(cell)], env,
                tmp_path).returncode == 0
    prot = tmp_path / "prot.yaml"
    prot.write_text("builder: lfp_ordering\nps: 0.2\nensemble: nvt\ntimestep_fs: 1\ndump_every: 20\n"
                    "thermo_every: 20\nrestart_every: null\n")
    args = ["md", "run", str(prot), "--potential", "pedone2006", "--structure", str(cell), "--engine", "lammps",
            "--no-progress"]
    r = _cli(args, env, tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "stored: md_run md-" in r.stdout
    q = _cli(["query", "--type", "md_run", "--json"], env, tmp_path)
    docs = json.loads(q.stdout)
    assert len(docs) == 1
    run = docs[0]["output"]
    assert run["engine"] == "lammps" and run["steps_done"] == 200 and not run["terminated"]
    assert run["potential"]["kind"] == "classical" and run["nsites"] == 104
    again = _cli(args, env, tmp_path)
    assert again.returncode == 0 and "from the cache: md 1" in again.stdout.replace("\n", " ")
    assert len(json.loads(_cli(["query", "--type", "md_run", "--json"], env, tmp_path).stdout)) == 2  # a second job, same run


def test_md_run_bad_inputs(tmp_path, campaign_tools):
    campaign_env, _ = campaign_tools
    env = campaign_env(tmp_path / "home")
    prot = tmp_path / "prot.yaml"
    prot.write_text("builder: lfp_ordering\nps: 0.1\n")
    cell = tmp_path / "c.extxyz"
    assert _cli(["generate", "olivine", "--supercell", "1,1,1", "--out", str(cell)], env, tmp_path).returncode == 0
    for args, message in [
        (["md", "run", str(tmp_path / "none.yaml"), "-p", "pedone2006", "-s", str(cell)], "does not exist"),
        (["md", "run", str(prot), "-p", "{campaign: x", "-s", str(cell)], "not valid JSON"),
        (["md", "run", str(prot), "-p", "pedone2006", "-s", str(cell), "--engine", "gromacs"], "gromacs"),
        (["md", "run", str(prot), "-p", "pedone2006", "-s", str(tmp_path / "no.xyz")], "does not exist"),
    ]:
        r = _cli(args, env, tmp_path)
        assert r.returncode == 2 and message in r.stderr and "fix:" in r.stderr, (args, r.stderr[-1500:])
    bad = tmp_path / "bad.yaml"
    bad.write_text("builder: lfp_ordering\npicoseconds: 3\n")
    r = _cli(["md", "run", str(bad), "-p", "pedone2006", "-s", str(cell)], env, tmp_path)
    assert r.returncode == 2 and "picoseconds" in r.stderr
