"""End-to-end: `steward demo` runs once per session into a temporary directory; the demo's
own checks, the model documents and the web UI (in headless Chromium) are tested on what it
left behind. STEWARD_CHROMIUM names the browser (default /usr/bin/chromium)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support import start_steward, steward_bin, stop  # noqa: E402


@pytest.fixture(scope="session")
def demo():
    """The demo's directory, its JSON summary, its output and how long it took."""
    root = Path(tempfile.mkdtemp(prefix="steward-e2e-"))
    started = time.monotonic()
    proc = subprocess.run([steward_bin(), "demo", "--dir", str(root / "demo"), "--json", str(root / "out.json")], capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    yield {"dir": root / "demo", "out": json.loads((root / "out.json").read_text()), "stdout": proc.stdout, "seconds": took}
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_server(demo):
    """A server on the demo's data, with the demo's policy; yields its URL."""
    d = demo["dir"]
    proc, url = start_steward(f"sqlite:///{d / 'steward.db'}", str(d / "artifacts"), flags=("--policy", d / "policy.yaml"))
    yield url
    stop(proc)


@pytest.fixture(scope="session")
def browser():
    from browser import Browser

    b = Browser()
    yield b
    b.close()
