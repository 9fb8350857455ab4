"""`python -m tui [RECORDING] [--speed N]`: the console on a recorded migration."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.replay import Recording, ReplayBackend
from tui.app import FerrymanApp

DEFAULT = Path(__file__).resolve().parent.parent / "tests/data/recordings/synthetic-precopy.json"


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tui")
    ap.add_argument("recording", nargs="?", default=str(DEFAULT))
    ap.add_argument("--speed", type=float, default=1.0)
    args = ap.parse_args()
    FerrymanApp(ReplayBackend(Recording.load(args.recording), speed=args.speed)).run()


if __name__ == "__main__":
    main()
