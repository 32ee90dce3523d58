"""Shared by every Python suite: where the `steward` binary under test is, and starting and
stopping a server of it."""

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def steward_bin() -> str:
    """STEWARD_BIN, else the release build under CARGO_TARGET_DIR (or ./target)."""
    if os.environ.get("STEWARD_BIN"):
        return os.environ["STEWARD_BIN"]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return str(target / "release" / "steward")


def start_steward(backend: str, artifacts: str, extra_env=None, flags=()):
    """Starts `steward server` on a free port; returns (process, url)."""
    env = dict(os.environ, **(extra_env or {}))
    proc = subprocess.Popen(
        [steward_bin(), "server", "--port", "0", "--backend-store-uri", backend, "--artifacts-destination", artifacts, *map(str, flags)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    line = proc.stdout.readline()
    m = re.search(r"http://[\d.]+:\d+", line)
    if not m:
        proc.kill()
        raise RuntimeError(f"steward server did not start: {line!r} {proc.stderr.read()}")
    return proc, m.group(0)


def stop(proc):
    proc.terminate()
    proc.wait(timeout=10)
