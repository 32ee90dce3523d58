"""Starts the real `steward server` for the MLflow-client compatibility suite.

The backend comes from the environment: with STEWARD_TEST_POSTGRES set (a server URL such as
postgresql://postgres@127.0.0.1:5432) a fresh database is created on it for the session;
otherwise a fresh SQLite file is used. STEWARD_BIN names the binary (default: the release
build under CARGO_TARGET_DIR or ./target).
"""

import contextlib
import os
import sys
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# Fail fast instead of retrying transient errors for minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support import start_steward, steward_bin, stop  # noqa: E402,F401




def create_postgres_database(server_url: str) -> str:
    name = f"steward_py_{uuid.uuid4().hex[:12]}"
    m = re.match(r"postgres(?:ql)?://(?P<user>[^@/]+)@(?P<host>[^:/]+):(?P<port>\d+)", server_url)
    assert m, f"STEWARD_TEST_POSTGRES must look like postgresql://USER@HOST:PORT, got {server_url!r}"
    subprocess.run(
        ["psql", "-h", m["host"], "-p", m["port"], "-U", m["user"], "-d", "postgres", "-v", "ON_ERROR_STOP=1",
         "-c", f"CREATE DATABASE {name}"],
        check=True, capture_output=True,
    )
    return f"{server_url.rstrip('/')}/{name}"


def fresh_backend(data: Path) -> str:
    """A new PostgreSQL database when STEWARD_TEST_POSTGRES is set, else a new SQLite file."""
    pg = os.environ.get("STEWARD_TEST_POSTGRES")
    return create_postgres_database(pg) if pg else f"sqlite:///{data}/steward.db"


@contextlib.contextmanager
def own_server(data: Path, *flags):
    """A server of the test's own, with these flags, on a fresh backend; yields its URL."""
    proc, url = start_steward(fresh_backend(data), str(data / "artifacts"), flags=flags)
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def server():
    data = Path(tempfile.mkdtemp(prefix="steward-py-"))
    backend = fresh_backend(data)
    # Alerts may be posted to the tests' own webhook receivers on this machine only.
    proc, url = start_steward(backend, str(data / "artifacts"), flags=("--webhook-allow", "127.0.0.1"))
    yield {"url": url, "backend": backend, "data": data}
    stop(proc)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(autouse=True)
def tracking(server, monkeypatch):
    import mlflow

    mlflow.set_tracking_uri(server["url"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server["url"])
    yield
    while mlflow.active_run():
        mlflow.end_run()
