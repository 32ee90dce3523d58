"""Fixtures for the statistics cross-check: a client for `steward stats eval`."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def steward_bin() -> str:
    if os.environ.get("STEWARD_BIN"):
        return os.environ["STEWARD_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "release" / "steward")


def evaluate(requests):
    """Answers from one `steward stats eval` process for a list of requests."""
    body = "\n".join(json.dumps(r) for r in requests) + "\n"
    proc = subprocess.run([steward_bin(), "stats", "eval"], input=body, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture
def stats():
    return evaluate
