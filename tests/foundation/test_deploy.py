"""deploy/ templates parse and render (no cluster or MongoDB server here)."""

from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_mlipflow_yaml_is_valid_settings(mlipflow_home, monkeypatch):
    from mlipflow.settings import Settings, get_settings, public_settings

    monkeypatch.setenv("MLIPFLOW_CONFIG", str(DEPLOY / "mlipflow.yaml"))
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("MLIPFLOW_DATABASE__PASSWORD", "pw-from-env")
    get_settings.cache_clear()
    s = Settings()
    assert not s.database.embedded and s.database.tls
    assert s.executables.lammps_kokkos and "-sf kk" in s.executables.lammps_command()
    assert str(s.scratch_dir) == "/scratch/alice/mlipflow"
    from mlipflow.store import _mongo_uri, job_store

    uri = _mongo_uri(s)
    assert "mlipflow:pw-from-env@" in uri and "tls=true" in uri
    js = job_store(s)  # MongoURIStore + GridFSURIStore, not connected
    assert type(js.docs_store).__name__ == "MongoURIStore"
    assert type(js.additional_stores["data"]).__name__ == "GridFSURIStore"
    assert "pw-from-env" not in str(public_settings(s))


def test_launchpad_env_expansion(monkeypatch):
    from mlipflow.cli.core_commands import load_launchpad
    from mlipflow.errors import UserError

    monkeypatch.delenv("MLIPFLOW_MONGO_PASSWORD", raising=False)
    with pytest.raises(UserError, match="MLIPFLOW_MONGO_PASSWORD"):
        load_launchpad(DEPLOY / "my_launchpad.yaml", connect=False)
    monkeypatch.setenv("MLIPFLOW_MONGO_USER", "bob")
    monkeypatch.setenv("MLIPFLOW_MONGO_PASSWORD", "pw")
    lp = load_launchpad(DEPLOY / "my_launchpad.yaml", connect=False)
    assert lp.uri_mode and "bob:pw@" in lp.host


def test_fworker_qadapter_atomate2_jobflow_templates():
    from atomate2.settings import Atomate2Settings
    from fireworks import FWorker
    from fireworks.utilities.fw_serializers import load_object_from_file

    # one FWorker and one queue adapter per kind of node, named by the settings' categories
    from mlipflow.settings import Settings

    categories = yaml.safe_load((DEPLOY / "mlipflow.yaml").read_text())["categories"]
    assert Settings(categories=categories).categories == {"cpu": "cpu", "gpu": "gpu", "light": "light"}
    for need, category in categories.items():
        fw = FWorker.from_file(str(DEPLOY / f"fworker_{need}.yaml"))
        assert fw.category == category
        script = load_object_from_file(str(DEPLOY / f"qadapter_{need}.yaml")).get_script_str("/tmp")
        assert f"fworker_{need}.yaml" in script and "mlipflow worker" in script
        assert ("#SBATCH --gres=gpu:1" in script) == (need == "gpu")
    fw = FWorker.from_file(str(DEPLOY / "fworker_gpu.yaml"))
    assert "-k on g 1 -sf kk" in fw.env["MLIPFLOW_EXECUTABLES__LAMMPS_KOKKOS_FLAGS"]
    assert "ATOMATE2_CONFIG_FILE" in FWorker.from_file(str(DEPLOY / "fworker_cpu.yaml")).env
    assert Atomate2Settings(**yaml.safe_load((DEPLOY / "atomate2.yaml").read_text())).VASP_CMD
    js = yaml.safe_load((DEPLOY / "jobflow.yaml").read_text())["JOB_STORE"]
    from jobflow import JobStore

    store = JobStore.from_dict_spec(js)
    assert type(store.additional_stores["data"]).__name__ == "GridFSURIStore"
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert compose["services"]["mongo"]["image"].startswith("mongo")
