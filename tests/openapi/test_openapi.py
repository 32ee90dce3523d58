"""Steward's own API against its OpenAPI document, fuzzed by schemathesis with the token of
each role, a wrong token and none: no answer may be a 5xx and none may break the documented
schema. Bounded: a fixed seed, a fixed number of examples per operation and a time budget."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from support import start_steward, steward_bin, stop  # noqa: E402

ROLES = ["viewer", "scientist", "validator", "admin"]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    backend = f"sqlite:///{tmp}/steward.db"
    tokens = {}
    for role in ROLES:
        subprocess.run([steward_bin(), "user", "create", f"{role}-user", "--role", role, "--backend-store-uri", backend], check=True, capture_output=True)
        tokens[role] = subprocess.run([steward_bin(), "token", "create", "--user", f"{role}-user", "--backend-store-uri", backend], check=True, capture_output=True, text=True).stdout.strip()
    proc, url = start_steward(backend, str(tmp / "artifacts"))
    # Something for the registry and ledger routes to find.
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    assert requests.post(f"{url}/api/2.0/mlflow/registered-models/create", json={"name": "credit"}, headers=admin).status_code == 200
    yield url, tokens, tmp
    stop(proc)


def test_the_document_describes_every_route_with_its_permission(server):
    url, _, _ = server
    doc = requests.get(f"{url}/api/steward/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    ops = {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert len(ops) >= 30, sorted(ops)
    assert ops[("POST", "/api/steward/v1/deployments")]["x-steward-permission"] == "deploy"
    assert ops[("PATCH", "/api/steward/v1/deployments/{name}")]["x-steward-permission"] == "deploy-or-agent-action"
    assert ops[("POST", "/api/steward/v1/agent/actions/{id}/decision")]["x-steward-permission"] == "approve"
    assert ops[("DELETE", "/api/steward/v1/tokens/{id}")]["x-steward-permission"] == "admin"
    assert ops[("GET", "/api/steward/v1/audit")]["x-steward-permission"] == "read"
    for (method, path), op in ops.items():
        assert op["summary"] and "200" in op["responses"], (method, path)
        if op["x-steward-permission"] != "public":
            assert {"401", "403"} <= set(op["responses"]), (method, path)


@pytest.mark.parametrize("caller", ROLES + ["wrong-token", "nobody"])
def test_no_request_breaks_the_contract(server, caller):
    url, tokens, tmp = server
    headers = []
    if caller in tokens:
        headers = ["-H", f"Authorization: Bearer {tokens[caller]}"]
    elif caller == "wrong-token":
        headers = ["-H", "Authorization: Bearer stw_not_a_token"]
    report = tmp / f"report-{caller}.json"
    cmd = [
        str(SCHEMATHESIS), "run", f"{url}/api/steward/v1/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance",
        # Property-based fuzzing, positive and negative. The stateful phase is left out: it
        # follows links from listings to deletions, and with the admin's token would delete the
        # very users this test calls as. (The coverage phase of schemathesis 4.32.5 fails inside
        # itself on some of these schemas, a KeyError in its own cache, so it is left out too.)
        "--phases", "fuzzing",
        "--max-examples", "50", "--seed", "20261204",
        "--generation-database", "none", "--no-color", "--workers", "2",
        "--report", "json", "--report-json-path", str(report),
        *headers,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    summary = [line for line in out.stdout.splitlines() if "generated" in line]
    print(f"{caller}: {summary[-1].strip() if summary else out.stdout[-500:]}")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    # Nothing in the run changed who the other callers are: only an admin may manage users and
    # tokens (the admin's own run may disable or delete its own user, reusing names it read).
    if caller in tokens and caller != "admin":
        assert requests.get(f"{url}/api/steward/v1/audit", params={"limit": 1}, headers={"Authorization": f"Bearer {tokens[caller]}"}).status_code == 200
