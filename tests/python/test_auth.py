"""The MLflow client's own authentication against a Steward server with users: tokens via
MLFLOW_TRACKING_TOKEN (Bearer) and MLFLOW_TRACKING_USERNAME/PASSWORD (basic), roles, and the
four-eyes rule on protected aliases, surfacing as MlflowException codes."""

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from conftest import create_postgres_database, start_steward, steward_bin, stop


def cli(*args, backend):
    out = subprocess.run([steward_bin(), *args, "--backend-store-uri", backend], check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def secured(monkeypatch):
    data = Path(tempfile.mkdtemp(prefix="steward-auth-"))
    pg = os.environ.get("STEWARD_TEST_POSTGRES")
    backend = create_postgres_database(pg) if pg else f"sqlite:///{data}/steward.db"
    tokens = {}
    for user, role in [("sam", "scientist"), ("val", "validator"), ("vera", "viewer")]:
        cli("user", "create", user, "--role", role, backend=backend)
        tokens[user] = cli("token", "create", "--user", user, backend=backend)
    proc, url = start_steward(backend, str(data / "artifacts"))
    mlflow.set_tracking_uri(url)
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    yield url, tokens, backend
    stop(proc)


def as_token(monkeypatch, token):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)


def as_basic(monkeypatch, user, password):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_client_auth_roles_and_four_eyes(secured, monkeypatch):
    url, tokens, backend = secured
    name = f"credit-{uuid.uuid4().hex[:6]}"

    with pytest.raises(MlflowException) as err:
        MlflowClient().search_experiments()
    assert err.value.error_code == "UNAUTHENTICATED"
    as_token(monkeypatch, "stw_wrong")
    with pytest.raises(MlflowException) as err:
        MlflowClient().search_experiments()
    assert err.value.error_code == "UNAUTHENTICATED"

    # A scientist logs and registers with a Bearer token.
    as_token(monkeypatch, tokens["sam"])
    mlflow.set_experiment(f"auth-{uuid.uuid4().hex[:6]}")
    X = np.random.default_rng(1).normal(size=(50, 3))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    with mlflow.start_run():
        mlflow.log_param("c", 1.0)
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    with pytest.raises(MlflowException) as err:
        MlflowClient().set_registered_model_alias(name, "champion", 1)
    assert err.value.error_code == "PERMISSION_DENIED"
    assert "only a validator or admin" in err.value.message

    # A viewer reads but cannot write (basic auth with the token as password).
    as_basic(monkeypatch, "vera", tokens["vera"])
    assert MlflowClient().get_registered_model(name).name == name
    with pytest.raises(MlflowException) as err:
        MlflowClient().create_experiment("nope")
    assert err.value.error_code == "PERMISSION_DENIED"

    # A validator promotes a version someone else created ...
    as_basic(monkeypatch, "val", tokens["val"])
    MlflowClient().set_registered_model_alias(name, "champion", 1)
    # ... but not one they created themselves.
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    with pytest.raises(MlflowException) as err:
        MlflowClient().set_registered_model_alias(name, "champion", 2)
    assert err.value.error_code == "PERMISSION_DENIED"
    assert "four-eyes" in err.value.message
    assert MlflowClient().get_model_version_by_alias(name, "champion").version == "1"

    # Every mutation is in the ledger under its actor, and the chain verifies.
    lines = cli("audit", "export", backend=backend).splitlines()
    actors = {__import__("json").loads(l)["actor"] for l in lines}
    assert {"sam", "val"} <= actors and "vera" not in actors
    assert subprocess.run([steward_bin(), "audit", "verify", "--backend-store-uri", backend]).returncode == 0
