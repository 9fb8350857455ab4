"""The hosts file the commands run on, and how a command gives up (both shared by the
argument parser in cli.py and the commands in commands.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from core import config


def die(msg: str, code: int = 2) -> NoReturn:
    print(f"ferryman: {msg}", file=sys.stderr)
    raise SystemExit(code)


def load_inventory(path: str | None) -> config.Inventory:
    p = Path(path) if path else config.default_path()
    if p is None:
        die(
            "no hosts file. Write ~/.config/ferryman/hosts.yaml (see hosts.example.yaml), "
            "pass --hosts FILE or set FERRYMAN_HOSTS; or start the local lab with "
            "`sudo ferryman lab up` and use --hosts /var/lib/ferryman-lab/hosts.yaml"
        )
    try:
        return config.load(p)
    except config.ConfigError as e:
        die(str(e))
