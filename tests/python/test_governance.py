"""Governance that cannot be bypassed, tried as an adversarial user would against a gov with
users (each case below was reproduced against the previous build, where it succeeded): writes by
a viewer through paths that merely end in /search, production changed by a scientist, an
identity swapped by renames across a restart, protected aliases removed indirectly, a model file
swapped under a served version, open mode that did not close, and users and tokens that could
not be disabled, deleted, revoked or expired."""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from conftest import fresh_backend, start_steward, steward_bin, stop
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.linear_model import LogisticRegression

API = "/api/2.0/mlflow"
ROLES = [("vera", "viewer"), ("sam", "scientist"), ("sid", "scientist"), ("val", "validator"), ("vic", "validator"), ("ada", "admin")]


def cli(backend, *args, check=True):
    return subprocess.run([steward_bin(), *args, "--backend-store-uri", backend], check=check, capture_output=True, text=True)


class Server:
    """A gov with a user of every role, restartable on the same backend and artifacts."""

    def __init__(self, tmp: Path):
        self.tmp, self.backend, self.tokens = tmp, fresh_backend(tmp), {}
        for user, role in ROLES:
            cli(self.backend, "user", "create", user, "--role", role)
            self.tokens[user] = cli(self.backend, "token", "create", "--user", user).stdout.strip()
        self.start()

    def start(self):
        self.proc, self.url = start_steward(self.backend, str(self.tmp / "artifacts"))

    def restart(self):
        stop(self.proc)
        self.start()

    def call(self, user, method, path, headers=None, **kw):
        headers = dict(headers or {}, **({"Authorization": f"Bearer {self.tokens[user]}"} if user else {}))
        return requests.request(method, f"{self.url}{path}", headers=headers, **kw)

    def ok(self, user, method, path, **kw):
        r = self.call(user, method, path, **kw)
        assert r.status_code == 200, (user, method, path, r.text)
        return r.json()

    def ledger(self):
        return self.ok("ada", "GET", "/api/steward/v1/audit", params={"limit": 10000})["entries"]

    def infer(self, deployment, row):
        r = self.call("vera", "POST", f"/v2/models/{deployment}/infer", json={"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": row}]})
        assert r.status_code == 200, r.text
        body = r.json()
        return body["model_name"], body["model_version"], body["outputs"]


@pytest.fixture
def gov(tmp_path, monkeypatch):
    s = Server(tmp_path)
    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    yield s
    stop(s.proc)


def register(gov, user, name, seed):
    """Logs a logistic regression as ONNX through the unmodified client as `user` and
    registers it under `name`; returns (version, run id)."""
    x = np.random.default_rng(seed).normal(size=(200, 3)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, seed % 3] > 0).astype(int))
    os.environ["MLFLOW_TRACKING_TOKEN"] = gov.tokens[user]
    try:
        mlflow.set_tracking_uri(gov.url)
        mlflow.set_experiment("governance")
        with mlflow.start_run() as run:
            info = mlflow.onnx.log_model(to_onnx(model, initial_types=[("input", FloatTensorType([None, 3]))]), name="model", registered_model_name=name)
        return int(info.registered_model_version), run.info.run_id
    finally:
        del os.environ["MLFLOW_TRACKING_TOKEN"]


def wait_loaded(gov, name, timeout=10):
    """The deployment once a restarted server has loaded it."""
    deadline = time.monotonic() + timeout
    while "routes" not in (spec := gov.ok("vera", "GET", f"/api/steward/v1/deployments/{name}")["deployment"]):
        assert time.monotonic() < deadline, f"deployment {name} not loaded: {spec}"
        time.sleep(0.1)
    return spec


def alias(gov, user, name, a, version):
    return gov.call(user, "POST", f"{API}/registered-models/alias", json={"name": name, "alias": a, "version": str(version)})


def test_a_viewer_cannot_write_through_paths_that_end_in_search(gov):
    lm = gov.ok("sam", "POST", f"{API}/logged-models", json={"experiment_id": "0", "name": "m"})["model"]["info"]["model_id"]
    before = len(gov.ledger())
    for method, path, body in [
        ("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/x/search", b"payload"),
        ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/0/x/search", None),
        ("PATCH", "/api/steward/v1/deployments/search", b"{}"),
        ("DELETE", "/api/steward/v1/deployments/search", None),
        ("DELETE", f"{API}/logged-models/{lm}/tags/search", None),
    ]:
        r = gov.call("vera", method, path, data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 403 and r.json()["error_code"] == "PERMISSION_DENIED", (method, path, r.text)
    entries = gov.ledger()
    assert len(entries) == before and not any(e["actor"] == "vera" for e in entries)


def deployed(gov, name="credit"):
    """v1 by sam, approved (champion) by val and deployed following the alias; v2 by sid."""
    v1, _ = register(gov, "sam", name, 1)
    v2, _ = register(gov, "sid", name, 2)
    assert alias(gov, "val", name, "champion", v1).status_code == 200
    gov.ok("val", "POST", "/api/steward/v1/deployments", json={"name": name, "model": f"models:/{name}@champion"})
    return v1, v2


def test_a_scientist_cannot_change_what_production_serves(gov):
    v1, v2 = deployed(gov)
    row = [0.5, -0.2, 1.0]
    assert gov.infer("credit", row)[1] == str(v1)
    for method, path, body in [
        ("PATCH", "/api/steward/v1/deployments/credit", {"model": f"models:/credit/{v2}"}),
        ("PATCH", "/api/steward/v1/deployments/credit", {"challenger": {"model": f"models:/credit/{v2}", "weight": 50}}),
        ("PATCH", "/api/steward/v1/deployments/credit", {"shadow": f"models:/credit/{v2}"}),
        ("POST", "/api/steward/v1/deployments", {"name": "other", "model": f"models:/credit/{v2}"}),
        ("POST", "/api/steward/v1/deployments/credit/stop", {"reason": "mine now"}),
        ("DELETE", "/api/steward/v1/deployments/credit", None),
    ]:
        r = gov.call("sam", method, path, json=body)
        assert r.status_code == 403 and "may not change what a deployment serves" in r.json()["message"], (method, path, r.text)
    # Nor may a validator put an unapproved version in as champion, follow an alias anyone can
    # move, or canary a version they created themselves.
    r = gov.call("val", "PATCH", "/api/steward/v1/deployments/credit", json={"model": f"models:/credit/{v2}"})
    assert r.status_code == 403 and "holds no protected alias" in r.json()["message"], r.text
    assert alias(gov, "sam", "credit", "candidate", v2).status_code == 200
    r = gov.call("val", "PATCH", "/api/steward/v1/deployments/credit", json={"challenger": {"model": "models:/credit@candidate", "weight": 10}})
    assert r.status_code == 403 and "alias 'candidate' is not protected" in r.json()["message"], r.text
    v3, _ = register(gov, "val", "credit", 3)
    r = gov.call("val", "PATCH", "/api/steward/v1/deployments/credit", json={"challenger": {"model": f"models:/credit/{v3}", "weight": 10}})
    assert r.status_code == 403 and "four-eyes" in r.json()["message"], r.text
    assert gov.infer("credit", row)[1] == str(v1)
    # A second validator may canary it; the canary is recorded under their name.
    gov.ok("vic", "PATCH", "/api/steward/v1/deployments/credit", json={"challenger": {"model": f"models:/credit/{v3}", "weight": 10}})
    assert [e["actor"] for e in gov.ledger() if e["action"].startswith("deployment.")] == ["val", "vic"]


def test_renames_cannot_swap_the_model_a_deployment_serves(gov):
    v1, _ = register(gov, "sam", "approved", 1)
    register(gov, "sid", "mine", 2)
    assert alias(gov, "val", "approved", "champion", v1).status_code == 200
    gov.ok("val", "POST", "/api/steward/v1/deployments", json={"name": "pinned", "model": f"models:/approved/{v1}"})
    row = [0.3, 1.2, -0.7]
    before = gov.infer("pinned", row)
    # The model holds the protected alias: renaming it away is a validator's call, as setting it is.
    r = gov.call("sam", "POST", f"{API}/registered-models/rename", json={"name": "approved", "new_name": "approved-old"})
    assert r.status_code == 403 and "only a validator or admin may rename the model of approved version 1 (it holds alias 'champion')" in r.json()["message"], r.text
    # With the alias gone, the scientist renames it away and puts their own model under its name.
    gov.ok("val", "DELETE", f"{API}/registered-models/alias", json={"name": "approved", "alias": "champion"})
    gov.ok("sam", "POST", f"{API}/registered-models/rename", json={"name": "approved", "new_name": "approved-old"})
    gov.ok("sid", "POST", f"{API}/registered-models/rename", json={"name": "mine", "new_name": "approved"})
    gov.restart()
    # The deployment followed the model it was bound to, not the name.
    spec = wait_loaded(gov, "pinned")
    assert spec["model"] == "models:/approved-old/1" and spec["routes"][0]["model"] == "approved-old", spec
    after = gov.infer("pinned", row)
    assert after[1] == "1" and after[2] == before[2], (before, after)
    # A served model cannot be deleted out from under its deployment.
    r = gov.call("ada", "DELETE", f"{API}/registered-models/delete", json={"name": "approved-old"})
    assert r.status_code == 400 and "deployment 'pinned' serves approved-old version 1" in r.json()["message"], r.text


def test_protected_aliases_cannot_be_removed_indirectly(gov):
    v1, _ = register(gov, "sam", "credit", 1)
    assert alias(gov, "val", "credit", "champion", v1).status_code == 200
    gov.ok("val", "POST", f"{API}/model-versions/transition-stage", json={"name": "credit", "version": str(v1), "stage": "Production"})
    for user, method, path, body, why in [
        ("sam", "DELETE", f"{API}/model-versions/delete", {"name": "credit", "version": "1"}, "only a validator or admin may delete credit version 1 (it holds alias 'champion' and stage Production)"),
        ("sam", "DELETE", f"{API}/registered-models/delete", {"name": "credit"}, "only a validator or admin may delete the model of credit version 1"),
        ("sam", "POST", f"{API}/model-versions/transition-stage", {"name": "credit", "version": "1", "stage": "Archived"}, "only a validator or admin may move to stage Archived credit version 1"),
        ("sam", "DELETE", f"{API}/registered-models/alias", {"name": "credit", "alias": "champion"}, "only a validator or admin may remove protected alias"),
    ]:
        r = gov.call(user, method, path, json=body)
        assert r.status_code == 403 and why in r.json()["message"], (path, r.text)
    assert gov.ok("vera", "GET", f"{API}/registered-models/alias", params={"name": "credit", "alias": "champion"})["model_version"]["version"] == "1"
    # A validator who did not create the version may archive it, as they may promote it.
    mv = gov.ok("vic", "POST", f"{API}/model-versions/transition-stage", json={"name": "credit", "version": "1", "stage": "Archived"})["model_version"]
    assert mv["current_stage"] == "Archived"


def test_a_model_file_changed_under_a_served_version_is_refused(gov):
    v1, run = register(gov, "sam", "credit", 1)
    assert alias(gov, "val", "credit", "champion", v1).status_code == 200
    gov.ok("val", "POST", "/api/steward/v1/deployments", json={"name": "credit", "model": "models:/credit@champion"})
    uri = gov.ok("vera", "GET", f"{API}/model-versions/get-download-uri", params={"name": "credit", "version": "1"})["artifact_uri"]
    path = uri.removeprefix("mlflow-artifacts:/").strip("/")
    x = np.random.default_rng(9).normal(size=(50, 3)).astype(np.float32)
    other = to_onnx(LogisticRegression().fit(x, (x[:, 1] > 0).astype(int)), initial_types=[("input", FloatTensorType([None, 3]))])
    put = gov.call("sam", "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{path}/model.onnx", data=other.SerializeToString())
    assert put.status_code == 200, put.text
    gov.restart()
    deadline = time.monotonic() + 10
    while (d := gov.ok("vera", "GET", "/api/steward/v1/deployments/credit")["deployment"]).get("state") != "failed":
        assert "routes" not in d and time.monotonic() < deadline, f"the changed file was served, or no load was tried: {d}"
        time.sleep(0.1)
    assert "refusing to serve a changed artifact" in d["error"], d
    r = gov.call("vera", "POST", "/v2/models/credit/infer", json={"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.3]}]})
    assert r.status_code == 404, r.text
    r = gov.call("vic", "POST", "/api/steward/v1/deployments", json={"name": "again", "model": "models:/credit@champion"})
    assert r.status_code == 400 and "refusing to serve a changed artifact" in r.json()["message"], r.text


def test_open_mode_closes_when_the_first_user_exists_and_never_serves_the_user_api(tmp_path):
    backend = fresh_backend(tmp_path)
    proc, url = start_steward(backend, str(tmp_path / "artifacts"))
    try:
        assert requests.post(f"{url}{API}/experiments/create", json={"name": "open"}).status_code == 200
        for path, body in [("/api/steward/v1/users", {"name": "mallory", "role": "admin"}), ("/api/steward/v1/tokens", {"user": "mallory"})]:
            r = requests.post(f"{url}{path}", json=body)
            assert r.status_code == 403 and "closed to anonymous callers" in r.json()["message"], r.text
        assert requests.get(f"{url}/api/steward/v1/users").status_code == 403
        cli(backend, "user", "create", "ada", "--role", "admin")
        token = cli(backend, "token", "create", "--user", "ada").stdout.strip()
        deadline = time.monotonic() + 5
        while requests.get(f"{url}{API}/experiments/search", params={"max_results": 1}).status_code != 401:
            assert time.monotonic() < deadline, "open mode did not end after the first user was created"
            time.sleep(0.1)
        assert requests.get(f"{url}/health").status_code == 200
        assert requests.get(f"{url}/api/steward/v1/users", headers={"Authorization": f"Bearer {token}"}).json()["users"][0]["name"] == "ada"
    finally:
        stop(proc)


def test_users_can_be_disabled_and_deleted_and_tokens_revoked_listed_and_expired(gov):
    auth = lambda t: {"Authorization": f"Bearer {t}"}
    search = lambda t: requests.get(f"{gov.url}{API}/experiments/search", params={"max_results": 1}, headers=auth(t)).status_code
    # Admins issue tokens with an expiry over the API; the token is shown once and listed by id.
    made = gov.ok("ada", "POST", "/api/steward/v1/tokens", json={"user": "sam", "label": "ci", "expires_in_days": 30})
    second = made["token"]
    assert made["token_info"]["id"].startswith("tok_") and made["token_info"]["expires_at"] > time.time() * 1000 + 29 * 86_400_000
    listed = gov.ok("ada", "GET", "/api/steward/v1/tokens", params={"user": "sam"})["tokens"]
    assert sorted(t["label"] for t in listed) == ["", "ci"] and second not in json.dumps(listed), listed
    assert search(second) == 200
    # Revocation takes effect on the very next request.
    gov.ok("ada", "DELETE", f"/api/steward/v1/tokens/{made['token_info']['id']}")
    assert search(second) == 401 and search(gov.tokens["sam"]) == 200
    # Disabling a user refuses all their tokens until enabled again.
    gov.ok("ada", "PATCH", "/api/steward/v1/users/sam", json={"disabled": True})
    assert search(gov.tokens["sam"]) == 401
    gov.ok("ada", "PATCH", "/api/steward/v1/users/sam", json={"disabled": False})
    assert search(gov.tokens["sam"]) == 200
    # Deleting revokes for good, and the name is never given again.
    gov.ok("ada", "DELETE", "/api/steward/v1/users/sam")
    assert search(gov.tokens["sam"]) == 401
    again = gov.call("ada", "POST", "/api/steward/v1/users", json={"name": "sam", "role": "admin"})
    assert again.status_code == 400 and "already exists" in again.json()["message"], again.text
    users = {u["name"]: u for u in gov.ok("ada", "GET", "/api/steward/v1/users")["users"]}
    assert users["sam"]["deleted_at"] and users["sam"]["disabled"]
    # Only admins manage identities.
    r = gov.call("val", "DELETE", f"/api/steward/v1/tokens/{listed[0]['id']}")
    assert r.status_code == 403 and "may not manage users and tokens" in r.json()["message"]
    # The CLI does the same on the gov's machine.
    out = cli(gov.backend, "token", "list", "--user", "vic").stdout
    tok_id = out.split()[0]
    assert tok_id.startswith("tok_") and gov.tokens["vic"] not in out
    cli(gov.backend, "token", "revoke", tok_id)
    assert search(gov.tokens["vic"]) == 401
    assert "deleted" in cli(gov.backend, "user", "list").stdout
    actions = [e["action"] for e in gov.ledger()]
    for a in ["token.create", "token.revoke", "user.update", "user.delete"]:
        assert a in actions, a
