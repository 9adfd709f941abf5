"""The one settings object of mlipflow.

Precedence (highest first): ``MLIPFLOW_*`` environment variables (nested with ``__``,
e.g. ``MLIPFLOW_DATABASE__URI``), the YAML file named by ``MLIPFLOW_CONFIG``, else
``~/.mlipflow.yaml``, then the defaults below.

Secrets (database password, Materials Project API key) are ``SecretStr``: they print as
``**********`` and :func:`public_settings` drops them before anything is logged or stored.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


def _default_home() -> Path:
    return Path(os.environ.get("MLIPFLOW_HOME", Path.home() / ".mlipflow"))


class DatabaseSettings(BaseModel):
    """Where documents go: an embedded on-disk store (default) or MongoDB."""

    uri: str | None = Field(
        None,
        repr=False,  # may embed user:password
        description="MongoDB URI (mongodb:// or mongodb+srv://). Unset: embedded montydb store at `path`.",
    )
    database: str = Field("mlipflow", description="Database name.")
    collection: str = Field("outputs", description="Collection of job output documents.")
    blob_collection: str = Field("blobs", description="Collection (or GridFS bucket) of large blobs.")
    path: Path | None = Field(None, description="Directory of the embedded store (default: <data_dir>/store).")
    username: str | None = Field(None, description="MongoDB user (if not in the URI).")
    password: SecretStr | None = Field(None, description="MongoDB password; never printed or stored.")
    auth_source: str = Field("admin", description="MongoDB authentication database.")
    tls: bool = Field(False, description="Use TLS for MongoDB.")
    tls_ca_file: Path | None = Field(None, description="CA bundle for MongoDB TLS.")
    timeout_s: float = Field(5.0, gt=0, description="Seconds to wait for the MongoDB server before giving up.")

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, v):
        if v and not v.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError(
                f"database.uri must start with mongodb:// or mongodb+srv:// (got {v.split('@')[-1]!r}); "
                "leave it unset to use the embedded store"
            )
        return v

    @property
    def embedded(self) -> bool:
        return not self.uri


class ExecutableSettings(BaseModel):
    """External programs. VASP itself is configured through atomate2's settings (VASP_CMD)."""

    lammps_cmd: str = Field("lmp", description="LAMMPS executable, e.g. 'lmp' or 'lmp -k on g 1 -sf kk'.")
    lammps_kokkos: bool = Field(False, description="Append KOKKOS GPU flags to lammps_cmd.")
    lammps_kokkos_flags: str = Field(
        "-k on g 1 -sf kk -pk kokkos newton on neigh half",
        description="Flags appended to lammps_cmd when lammps_kokkos is true.",
    )
    mpi_cmd: str | None = Field(None, description="MPI launcher prefix, e.g. 'srun' or 'mpirun -np 4'.")
    pacemaker_cmd: str = Field("pacemaker", description="pacemaker executable.")
    dp_cmd: str = Field("dp", description="DeePMD-kit executable.")
    vasp_cmd: str | None = Field(
        None, description="Overrides atomate2's VASP_CMD when set (else atomate2 settings are used)."
    )

    def lammps_command(self, nprocs: int | None = None) -> str:
        cmd = self.lammps_cmd
        if self.lammps_kokkos and "-k on" not in cmd:
            cmd = f"{cmd} {self.lammps_kokkos_flags}"
        if self.mpi_cmd:
            cmd = f"{self.mpi_cmd} {cmd}"
        return cmd


class Settings(BaseSettings):
    """mlipflow configuration (see module docstring for precedence)."""

    model_config = SettingsConfigDict(
        env_prefix="MLIPFLOW_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    data_dir: Path = Field(default_factory=lambda: _default_home() / "data", description="Data directory.")
    scratch_dir: Path = Field(
        default_factory=lambda: _default_home() / "scratch", description="Working directory for job runs."
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    executables: ExecutableSettings = Field(default_factory=ExecutableSettings)
    default_labeler: str = Field("chgnet", description="Labeler used when none is named: chgnet, vasp:<set>, module:Class.")
    launchpad_file: Path | None = Field(None, description="FireWorks my_launchpad.yaml used by `mlipflow submit`.")
    mp_api_key: SecretStr | None = Field(None, description="Materials Project API key; never printed or stored.")
    reference_energies: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Isolated-atom energies (eV) per labeler, e.g. {'vasp:nafepo4_ace': {'Na': -1.3, ...}}; "
                    "missing ones are computed by the labeler.")
    threads: int = Field(1, ge=1, description="Threads for TensorFlow/torch/OpenMP in embedded runs.")
    categories: dict[str, str] = Field(
        default_factory=dict,
        description="Kind of node each kind of job needs -> the worker that runs it: keys 'cpu' (reference "
                    "calculations: VASP, CHGNet labels), 'gpu' (fits, DeePMD training, MD), 'light' (gathering, "
                    "selection, analysis); values are FireWorks categories (FWorker category) and jobflow-remote "
                    "worker names. Empty (the laptop profile): one worker runs everything.")
    exec_configs: dict[str, str] = Field(
        default_factory=dict,
        description="External code -> the jobflow-remote exec_config (modules, exports) its jobs run with: keys "
                    "'vasp', 'pacemaker', 'deepmd', 'lammps', values names under the project's exec_config "
                    "(deploy/jobflow_remote_project.yaml). Empty: every job runs with its worker's pre_run only.")
    dp_pretrained: Path | None = Field(None, description="Pretrained DeePMD-kit checkpoint (.pt) to fine-tune, e.g. DPA-2.3.1-v3.0.0rc0.pt or one made by `mlipflow potential pretrain`; `mlipflow doctor` lists its branches.")
    jobflow_remote_project: str | None = Field(None, description="jobflow-remote project name used by `mlipflow submit --launcher jobflow-remote`.")

    @field_validator("categories", "exec_configs")
    @classmethod
    def _known_keys(cls, v: dict[str, str], info) -> dict[str, str]:
        """categories are keyed by kinds of job (workers.NEEDS), exec_configs by codes (workers.CODES)."""
        from mlipflow.workers import CODES, NEEDS

        known, what = (NEEDS, "kind(s) of job") if info.field_name == "categories" else (CODES, "code(s)")
        unknown = sorted(set(v) - set(known))
        if unknown:
            raise ValueError(f"unknown {what} {unknown} in {info.field_name}: use {', '.join(known)}")
        return v

    @field_validator("data_dir", "scratch_dir", "launchpad_file", mode="before")
    @classmethod
    def _expand(cls, v):
        return Path(os.path.expandvars(str(v))).expanduser() if v is not None else v

    @classmethod
    def config_file(cls) -> Path:
        return Path(os.environ.get("MLIPFLOW_CONFIG", Path.home() / ".mlipflow.yaml")).expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = cls.config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        elif "MLIPFLOW_CONFIG" in os.environ:
            raise FileNotFoundError(
                f"MLIPFLOW_CONFIG points to {path}, which does not exist: create it or unset MLIPFLOW_CONFIG"
            )
        return tuple(sources)

    @property
    def store_path(self) -> Path:
        return Path(self.database.path or self.data_dir / "store").expanduser()


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                    "TF_NUM_INTEROP_THREADS", "DP_INTRA_OP_PARALLELISM_THREADS",
                    "DP_INTER_OP_PARALLELISM_THREADS")


def apply_thread_settings(settings: Settings | None = None) -> int:
    """Set thread counts for OpenMP/BLAS, TensorFlow, torch and DeePMD (variables already set win)."""
    n = (settings or get_settings()).threads
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, str(n))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    return n


def public_settings(settings: Settings) -> dict[str, Any]:
    """Settings as a dict with every secret removed (safe to print, log or store)."""
    data = settings.model_dump(mode="json")
    data.pop("mp_api_key", None)
    db = data.get("database", {})
    db.pop("password", None)
    if db.get("uri"):
        db["uri"] = redact_uri(db["uri"])
    return data


def redact_uri(uri: str) -> str:
    """Remove user:password from a MongoDB URI."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing the env)."""
    return Settings()
