"""Shared by every Python suite: where the `steward` binary under test is."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def steward_bin() -> str:
    """STEWARD_BIN, else the release build under CARGO_TARGET_DIR (or ./target)."""
    if os.environ.get("STEWARD_BIN"):
        return os.environ["STEWARD_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "release" / "steward")
