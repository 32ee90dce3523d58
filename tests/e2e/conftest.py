"""End-to-end: `steward demo --serve` runs once per session into a temporary directory; the
demo's own checks, the model documents and the web UI (in headless Chromium) are tested on what
it left behind and against the server it keeps running. STEWARD_CHROMIUM names the browser (default /usr/bin/chromium)."""

import json
import os
import re
import signal
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
from support import start_steward, steward_bin, stop  # noqa: E402,F401


@pytest.fixture(scope="session")
def demo():
    """`steward demo --serve`: its directory, JSON summary, output, how long it took, and the URL
    of the server it keeps running (with the demo's policy) until the session ends; then Ctrl-C
    must end it cleanly."""
    root = Path(tempfile.mkdtemp(prefix="steward-e2e-"))
    started = time.monotonic()
    proc = subprocess.Popen([steward_bin(), "demo", "--dir", str(root / "demo"), "--json", str(root / "out.json"), "--serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, url = [], None
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"serving at (http://\S+) until Ctrl-C", line)
        if m:
            url = m.group(1)
            break
    took = time.monotonic() - started
    if url is None:
        proc.wait(timeout=60)
        pytest.fail(f"steward demo exited {proc.returncode} without serving:\n{''.join(lines)[-4000:]}\n{proc.stderr.read()[-4000:]}")
    yield {"dir": root / "demo", "out": json.loads((root / "out.json").read_text()), "stdout": "".join(lines), "seconds": took, "url": url}
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()[-4000:]
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_server(demo):
    """The demo's own server, kept running by `--serve`, with the demo's policy."""
    return demo["url"]


@pytest.fixture(scope="session")
def browser():
    from browser import Browser

    b = Browser()
    yield b
    b.close()
