"""Settings precedence and secrets."""

import json

import pytest
import yaml
from pydantic import ValidationError


def test_defaults_embedded(mlipflow_home):
    from mlipflow.settings import get_settings

    s = get_settings()
    assert s.database.embedded
    assert s.store_path == mlipflow_home / "data" / "store"
    assert s.default_labeler == "chgnet"


def test_precedence_file_then_env(mlipflow_home, tmp_path, monkeypatch):
    from mlipflow.settings import get_settings

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"default_labeler": "emt", "threads": 3,
                                   "executables": {"lammps_cmd": "lmp_file"}}))
    monkeypatch.setenv("MLIPFLOW_CONFIG", str(cfg))
    get_settings.cache_clear()
    s = get_settings()
    assert (s.default_labeler, s.threads, s.executables.lammps_cmd) == ("emt", 3, "lmp_file")
    monkeypatch.setenv("MLIPFLOW_DEFAULT_LABELER", "vasp:nafepo4_ace")
    monkeypatch.setenv("MLIPFLOW_EXECUTABLES__LAMMPS_CMD", "lmp_env")
    get_settings.cache_clear()
    s = get_settings()
    assert s.default_labeler == "vasp:nafepo4_ace"  # env beats file
    assert s.executables.lammps_cmd == "lmp_env"
    assert s.threads == 3  # file beats default


def test_home_file_used(mlipflow_home, tmp_path):
    from mlipflow.settings import get_settings

    (tmp_path / ".mlipflow.yaml").write_text("default_labeler: emt\n")
    get_settings.cache_clear()
    assert get_settings().default_labeler == "emt"


def test_kokkos_flags(mlipflow_home, monkeypatch):
    from mlipflow.settings import get_settings

    monkeypatch.setenv("MLIPFLOW_EXECUTABLES__LAMMPS_KOKKOS", "true")
    monkeypatch.setenv("MLIPFLOW_EXECUTABLES__MPI_CMD", "srun")
    get_settings.cache_clear()
    cmd = get_settings().executables.lammps_command()
    assert cmd.startswith("srun lmp") and "-k on g 1 -sf kk" in cmd


def test_missing_config_file_is_clear(mlipflow_home, monkeypatch):
    from mlipflow.settings import Settings

    monkeypatch.setenv("MLIPFLOW_CONFIG", "/nonexistent/mlipflow.yaml")
    with pytest.raises(FileNotFoundError, match="MLIPFLOW_CONFIG"):
        Settings()


def test_bad_uri_rejected(mlipflow_home, monkeypatch):
    from mlipflow.settings import Settings

    monkeypatch.setenv("MLIPFLOW_DATABASE__URI", "http://db.example:27017")
    with pytest.raises(ValidationError, match="mongodb://"):
        Settings()


def test_secrets_never_printed(mlipflow_home, monkeypatch, capsys):
    from mlipflow.cli.main import main
    from mlipflow.settings import get_settings, public_settings

    monkeypatch.setenv("MLIPFLOW_DATABASE__URI", "mongodb://alice:hunter2pw@db.example:27017")
    monkeypatch.setenv("MLIPFLOW_DATABASE__PASSWORD", "s3cretPW")
    monkeypatch.setenv("MLIPFLOW_MP_API_KEY", "MPKEY123456")
    get_settings.cache_clear()
    s = get_settings()
    assert s.database.password.get_secret_value() == "s3cretPW"
    text = json.dumps(public_settings(s), default=str) + repr(s) + str(s)
    for secret in ("s3cretPW", "MPKEY123456", "hunter2pw"):
        assert secret not in text
    assert main(["config"]) == 0
    out = capsys.readouterr()
    for secret in ("s3cretPW", "MPKEY123456", "hunter2pw"):
        assert secret not in out.out + out.err
    assert "db.example" in out.out


def test_reference_energies_per_labeler(mlipflow_home, tmp_path, monkeypatch):
    from mlipflow.engines.labelers import get_labeler
    from mlipflow.settings import get_settings

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"reference_energies": {"emt": {"Cu": -0.5}, "chgnet": {"Cu": -9.0}}}))
    monkeypatch.setenv("MLIPFLOW_CONFIG", str(cfg))
    get_settings.cache_clear()
    assert get_labeler("emt").reference_energies(["Cu"]) == {"Cu": -0.5}
