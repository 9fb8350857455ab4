#!/usr/bin/env bash
# Installs what the tests need, brings up the lab, and runs every layer of tests:
# unit, functional (Pilot), snapshot, lab end-to-end. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ferryman lab up >/dev/null
.venv/bin/ruff check core tui ferryman lab tests bench scripts
.venv/bin/mypy core tui
.venv/bin/lint-imports >/dev/null || .venv/bin/lint-imports
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
