"""Fixtures for the statistics cross-check: a client for `steward stats eval`."""

import json
import os
import sys
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support import steward_bin  # noqa: E402




def evaluate(requests):
    """Answers from one `steward stats eval` process for a list of requests."""
    body = "\n".join(json.dumps(r) for r in requests) + "\n"
    proc = subprocess.run([steward_bin(), "stats", "eval"], input=body, capture_output=True, text=True, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture
def stats():
    return evaluate
