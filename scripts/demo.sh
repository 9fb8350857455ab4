#!/usr/bin/env bash
# Installs what ferryman needs, brings up the local lab (two hosts, a workload on host1)
# and opens the console on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ferryman lab up "$@"
exec .venv/bin/ferryman --hosts /var/lib/ferryman-lab/hosts.yaml
