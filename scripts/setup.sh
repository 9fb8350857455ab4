#!/usr/bin/env bash
# Shared by demo.sh and test.sh: system packages + CRIU (lab/setup/install-deps.sh),
# then a virtualenv in .venv with ferryman and its dev tools. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "ferryman: the lab needs root (network namespaces, dockerd, sshd): run with sudo" >&2
  exit 1
fi
bash lab/setup/install-deps.sh
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "ferryman: needs Python ≥ 3.11 (found $("$PY" --version 2>&1))" >&2; exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  log=$(mktemp)
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[dev]'; } >"$log" 2>&1; then
    grep -v "WARNING: Location" "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  rm -f .venv/.installed-*; touch "$stamp"
fi
