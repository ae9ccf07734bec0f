#!/usr/bin/env bash
# Create (or reuse) the PyTorch + transformers virtual environment used for reference numbers:
# the parity script (scripts/parity_reference.py) and the reference benchmarks.
#
# usage: scripts/setup-reference.sh     (venv: ${BERTFIT_CACHE:-$HOME/.cache/bertfit}/ref-venv)
#
# Prints the venv's python path on stdout. Several GB on first install; pip's own settings
# (PIP_INDEX_URL, PIP_FIND_LINKS, ...) apply, e.g. to pick a CPU-only torch build.
# If another pip is already installing into the same venv, this waits for it instead of racing it.
set -euo pipefail

CACHE="${BERTFIT_CACHE:-$HOME/.cache/bertfit}"
VENV="$CACHE/ref-venv"
PY="$VENV/bin/python"
PACKAGES=(torch transformers accelerate numpy)
BASE_PYTHON="${PYTHON:-python3}"

venv_ready() {
  [[ -x "$PY" ]] && "$PY" -c '
import importlib.util, sys
sys.exit(any(importlib.util.find_spec(m) is None for m in sys.argv[1:]))' "${PACKAGES[@]}" >/dev/null 2>&1
}

# pids of running pip processes that install into this venv (other than us)
pip_in_flight() {
  local pid cmd
  for pid in $(pgrep -f "pip" 2>/dev/null || true); do
    [[ "$pid" == "$$" ]] && continue
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    if [[ "$cmd" == *"$VENV/bin/"*pip*install* || "$cmd" == *"$VENV/bin/python"*" -m pip install"* ]]; then
      echo "$pid"
    fi
  done
}

waited=0
while [[ -n "$(pip_in_flight)" ]]; do
  if [[ $waited -eq 0 ]]; then echo "waiting for a pip install already running into $VENV" >&2; fi
  waited=$((waited + 10))
  sleep 10
done

if ! venv_ready; then
  if [[ ! -x "$PY" ]]; then
    echo "creating $VENV" >&2
    "$BASE_PYTHON" -m venv "$VENV"
  fi
  echo "installing ${PACKAGES[*]} into $VENV (several GB, takes a while)" >&2
  "$PY" -m pip install --quiet --upgrade pip >&2
  "$PY" -m pip install --quiet "${PACKAGES[@]}" >&2
  if ! venv_ready; then
    echo "error: $VENV still cannot import ${PACKAGES[*]}" >&2
    exit 1
  fi
fi

echo "$PY"
