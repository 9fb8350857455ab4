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
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e '.[dev]'
  rm -f .venv/.installed-*; touch "$stamp"
fi
