"""The agent, first part: under a written policy it opens an incident with its evidence when
a monitor's dataset drift crosses the policy's threshold, notifies, starts a canary of the
version the `challenger` alias names, and queues the declared retraining for a human; a validator's approval runs the retraining pipeline, tagged with the
incident; every step is in the audit ledger. A worse canary is rolled back automatically and a
good one stepped up and promoted, with zero failed requests throughout. A promotion the policy
reserves for a human waits until a validator other than the version's creator approves it. The
stop switch moves traffic to the fallback from the next request. Every incident carries the
rule-based analysis and, with a language model configured (here a local stand-in speaking the
Anthropic Messages API), its advice, which adds no action. Policies that cannot work are refused
at startup."""

import os
import subprocess
import time

import numpy as np
import pandas as pd
import requests
from conftest import REPO, own_server, steward_bin
from mlflow.tracking import MlflowClient
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier

import mlflow


def wait(what, probe, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = probe()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class StandIn:
    """A local stand-in for the Anthropic Messages API: records each request, answers as the
    service does."""

    ANSWER = "Stand-in analysis: the shift is broad; retraining after review is proportionate."

    def __init__(self):
        import http.server
        import json
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                seen.append((self.path, dict(self.headers), body))
                answer = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"), "stop_reason": "end_turn",
                                     "content": [{"type": "text", "text": StandIn.ANSWER}], "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_drift_opens_an_incident_and_approved_retraining_runs(tmp_path, monkeypatch):
    import json

    llm = StandIn()
    monkeypatch.setenv("STEWARD_REASONER_API_KEY", "stand-in-key")
    german = REPO / "examples" / "credit" / "germancredit.csv"
    (tmp_path / "retrain.yaml").write_text(f"name: watched-retrain\ndata: {german}\ntrain: {{label: creditability, positive: bad, trees: 20}}\n"
                                           "steps:\n  - train: {}\n  - evaluate: {}\n  - register: {model: watched-retrained}\n")
    (tmp_path / "policy.yaml").write_text(
        "deployment: watched\n"
        "triggers:\n"
        "  - {name: dataset-drift, metric: drift_share, above: 0.4, windows: 1, incident: data_drift, actions: [notify, retrain, start_canary]}\n"
        "approval: [retrain]\n"
        f"retrain: {{pipeline: {tmp_path / 'retrain.yaml'}}}\n"
    )
    reasoner = ("--reasoner", "anthropic", "--reasoner-url", llm.url, "--reasoner-model", "claude-stand-in")
    with own_server(tmp_path, "--policy", tmp_path / "policy.yaml", *reasoner) as base:
        x, y = make_classification(n_samples=3000, n_features=4, n_informative=3, n_redundant=0, random_state=2)
        x = x.astype(np.float32)
        model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x[:1000], y[:1000])
        mlflow.set_tracking_uri(base)
        mlflow.set_experiment("agent")
        with mlflow.start_run():
            info = mlflow.onnx.log_model(to_onnx(model, initial_types=[("input", FloatTensorType([None, 4]))]), name="model", registered_model_name="watched")
        with mlflow.start_run():  # version 2, waiting as the challenger
            other = GradientBoostingClassifier(n_estimators=12, random_state=1).fit(x[:1000], y[:1000])
            mlflow.onnx.log_model(to_onnx(other, initial_types=[("input", FloatTensorType([None, 4]))]), name="model", registered_model_name="watched")
        MlflowClient(base).set_registered_model_alias("watched", "challenger", "2")
        run = lambda *a: subprocess.run([steward_bin(), *map(str, a), "--tracking-uri", base], capture_output=True, text=True)
        assert run("deploy", "create", "watched", "--model", f"models:/watched/{info.registered_model_version}").returncode == 0
        pd.DataFrame(x[1000:2500], columns=[f"f{i}" for i in range(4)]).to_csv(tmp_path / "reference.csv", index=False)
        made = run("monitor", "create", "watched", "--reference", tmp_path / "reference.csv", "--window-size", 20, "--no-prediction-drift")
        assert made.returncode == 0, made.stderr

        session = requests.Session()

        def send(rows):
            for i in range(0, len(rows), 10):
                b = rows[i : i + 10]
                assert session.post(f"{base}/v2/models/watched/infer", json={"inputs": [{"name": "input", "shape": list(b.shape), "datatype": "FP32", "data": b.ravel().tolist()}]}).status_code == 200

        send(x[2500:2700])  # one stationary window
        wait("the first window", lambda: requests.get(f"{base}/api/steward/v1/deployments/watched/monitor/metrics", params={"metric": "drift_share"}).json()["metrics"])
        time.sleep(2.5)  # an agent tick: nothing to do
        assert requests.get(f"{base}/api/steward/v1/incidents").json()["incidents"] == []
        send(x[2700:2900] + 2.0 * x[1000:2500].std(axis=0))  # every feature shifts

        (incident,) = wait("an incident", lambda: requests.get(f"{base}/api/steward/v1/incidents", params={"deployment": "watched"}).json()["incidents"])
        assert incident["kind"] == "data_drift" and incident["trigger"] == "dataset-drift" and incident["status"] == "open"
        assert incident["evidence"]["metric"] == "drift_share" and incident["evidence"]["windows"][0][1] > 0.4
        actions = wait("two actions", lambda: [a for a in requests.get(f"{base}/api/steward/v1/agent/actions").json()["actions"] if a["status"] in ("pending", "done")] or None)
        pending = requests.get(f"{base}/api/steward/v1/agent/actions", params={"status": "pending"}).json()["actions"]
        assert [(a["kind"], a["incident_id"]) for a in pending] == [("retrain", incident["id"])], actions
        wait("the canary", lambda: [a for a in requests.get(f"{base}/api/steward/v1/agent/actions", params={"status": "done"}).json()["actions"] if a["kind"] == "start_canary"])
        canary = requests.get(f"{base}/api/steward/v1/deployments/watched").json()["deployment"]
        assert canary["challenger"] == {"model": "models:/watched/2", "weight": 10}, canary  # the alias's version, pinned
        assert [r["version"] for r in canary["routes"] if r["role"] == "challenger"] == [2], canary
        wait("the notification", lambda: [a for a in requests.get(f"{base}/api/steward/v1/agent/actions", params={"status": "done"}).json()["actions"] if a["kind"] == "notify"])
        # The analyses: the rules' at once, the language model's as advice; the advice adds no action.
        analyses = wait("both analyses", lambda: (lambda a: a if len(a) == 2 else None)(requests.get(f"{base}/api/steward/v1/incidents").json()["incidents"][0]["analyses"]))
        by_source = {a["source"]: a["text"] for a in analyses}
        assert by_source["rules"].startswith("Data drift on watched: drift_share above 0.4 in 1 consecutive window(s)"), by_source
        assert "Policy response (trigger 'dataset-drift'): notify (automatic under the policy); retrain (waits for a human's approval); start a canary (automatic under the policy)." in by_source["rules"]
        assert by_source["llm:claude-stand-in"] == StandIn.ANSWER
        ((path, headers, body),) = llm.seen
        assert path == "/v1/messages" and headers["x-api-key"] == "stand-in-key" and headers["anthropic-version"] == "2023-06-01"
        facts = json.loads(body["messages"][0]["content"])
        assert body["model"] == "claude-stand-in" and facts["incident"]["evidence"]["metric"] == "drift_share" and facts["rule_based_analysis"] == by_source["rules"]
        assert "cannot take or trigger any action" in body["system"]
        time.sleep(2.5)  # later ticks neither reopen the incident nor queue it again
        assert len(requests.get(f"{base}/api/steward/v1/incidents").json()["incidents"]) == 1
        assert len(requests.get(f"{base}/api/steward/v1/agent/actions", params={"status": "pending"}).json()["actions"]) == 1

        bad = requests.post(f"{base}/api/steward/v1/agent/actions/{pending[0]['id']}/decision", json={"decision": "maybe", "reason": "?"})
        assert bad.status_code == 400 and "decision" in bad.json()["message"]
        ok = requests.post(f"{base}/api/steward/v1/agent/actions/{pending[0]['id']}/decision", json={"decision": "approve", "reason": "drift confirmed on the dashboard"})
        assert ok.status_code == 200 and ok.json()["action"]["status"] == "approved", ok.text
        again = requests.post(f"{base}/api/steward/v1/agent/actions/{pending[0]['id']}/decision", json={"decision": "reject", "reason": "late"})
        assert again.status_code == 400 and "not waiting" in again.json()["message"]

        done = wait("the retraining", lambda: [a for a in requests.get(f"{base}/api/steward/v1/agent/actions").json()["actions"] if a["kind"] == "retrain" and a["status"] in ("done", "failed")], timeout=60)
        assert done[0]["status"] == "done", done
        assert "pipeline watched-retrain finished" in done[0]["outcome"] and done[0]["decision_reason"] == "drift confirmed on the dashboard", done
        client = MlflowClient(base)
        (version,) = client.search_model_versions("name = 'watched-retrained'")
        parent = client.get_run(client.get_run(version.run_id).data.tags["mlflow.parentRunId"])
        assert parent.data.tags["steward.trigger"] == f"agent incident {incident['id']}"

        ledger = [e["action"] for e in requests.get(f"{base}/api/steward/v1/audit").json()["entries"]]
        for step in ["incident.open", "incident.analysis", "agent.action.pending", "agent.action.approved", "approval.approve", "agent.action.running", "agent.action.done"]:
            assert step in ledger, (step, ledger)
        assert requests.get(f"{base}/api/steward/v1/audit/verify").json()["intact"] is True


def test_policies_that_cannot_work_are_refused_at_startup(tmp_path):
    for policy, needle in [
        ("deployment: d\ntriggers:\n  - {name: t, metric: roc_auc, below: 0.7, incident: performance_decay, actions: [retrain]}\n", "'retrain' needs `retrain: {pipeline: FILE}`"),
        ("deployment: d\ntriggers:\n  - {name: t, metric: roc_auc, below: 0.7, incident: performance_decay, actions: [retrain]}\nretrain: {pipeline: /nowhere/p.yaml}\n", "retraining pipeline '/nowhere/p.yaml' does not exist"),
        ("deployment: d\ntriggers:\n  - {name: t, metric: roc_auc, below: 0.7, above: 0.9, incident: performance_decay}\n", "exactly one of 'above' and 'below'"),
    ]:
        (tmp_path / "p.yaml").write_text(policy)
        proc = subprocess.run([steward_bin(), "server", "--port", "0", "--policy", str(tmp_path / "p.yaml")], capture_output=True, text=True, timeout=20)
        assert proc.returncode != 0 and needle in proc.stderr, (policy, proc.stderr)
    proc = subprocess.run([steward_bin(), "server", "--port", "0", "--reasoner", "openai", "--reasoner-url", "http://127.0.0.1:9/v1", "--reasoner-model", "m"], capture_output=True, text=True, timeout=20)
    assert proc.returncode != 0 and "--reasoner needs an agent policy" in proc.stderr, proc.stderr


def test_canary_rolls_back_a_worse_challenger_and_promotes_a_good_one(tmp_path):
    import threading

    (tmp_path / "policy.yaml").write_text(
        "deployment: canaried\n"
        "canary: {steps: [20, 50, 100], min_requests: 30, max_error_rate_increase: 0.01, max_latency_ratio: 50, max_positive_rate_shift: 0.15}\n"
    )
    with own_server(tmp_path, "--policy", tmp_path / "policy.yaml") as base:
        x, y = make_classification(n_samples=3000, n_features=4, n_informative=3, n_redundant=0, random_state=4)
        x = x.astype(np.float32)
        mostly_positive = np.where(np.arange(1000) % 20 == 0, 0, 1)  # a model that turns nearly everyone down
        models = [GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x[:1000], y[:1000]),
                  GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x[:1000], mostly_positive),
                  GradientBoostingClassifier(n_estimators=12, random_state=1).fit(x[1000:2000], y[1000:2000])]
        mlflow.set_tracking_uri(base)
        mlflow.set_experiment("canary")
        for m in models:
            with mlflow.start_run():
                mlflow.onnx.log_model(to_onnx(m, initial_types=[("input", FloatTensorType([None, 4]))]), name="model", registered_model_name="canaried")
        url = f"{base}/api/steward/v1/deployments"
        assert requests.post(url, json={"name": "canaried", "model": "models:/canaried/1"}).status_code == 200

        statuses, stop = [], threading.Event()

        def traffic():
            s = requests.Session()
            i = 0
            while not stop.is_set():
                row = x[2000 + i % 1000 : 2001 + i % 1000]
                statuses.append(s.post(f"{base}/v2/models/canaried/infer", json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": row.ravel().tolist()}]}).status_code)
                i += 1

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        try:
            deployment = lambda: requests.get(f"{url}/canaried").json()["deployment"]
            assert requests.patch(f"{url}/canaried", json={"challenger": {"model": "models:/canaried/2", "weight": 20}}).status_code == 200
            wait("the rollback", lambda: "challenger" not in deployment())
            assert deployment()["model"] == "models:/canaried/1"
            actions = requests.get(f"{base}/api/steward/v1/agent/actions").json()["actions"]
            (rollback,) = [a for a in actions if a["kind"] == "rollback"]
            assert rollback["status"] == "done" and "positive rate" in rollback["reason"], rollback

            assert requests.patch(f"{url}/canaried", json={"challenger": {"model": "models:/canaried/3", "weight": 20}}).status_code == 200
            try:
                wait("the promotion", lambda: deployment()["model"] == "models:/canaried/3" and "challenger" not in deployment(), timeout=60)
            except AssertionError as e:  # say what the agent did instead
                raise AssertionError(f"{e}: {deployment()} {requests.get(f'{base}/api/steward/v1/agent/actions').json()['actions']}") from None
        finally:
            stop.set()
            worker.join(timeout=10)
        assert len(statuses) > 100 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
        kinds = [(a["kind"], a["status"]) for a in requests.get(f"{base}/api/steward/v1/agent/actions").json()["actions"]]
        assert kinds.count(("canary_step", "done")) == 2 and ("promote", "done") in kinds, kinds
        ledger = [(e["action"], e["actor"]) for e in requests.get(f"{base}/api/steward/v1/audit").json()["entries"]]
        assert ledger.count(("deployment.update", "agent")) == 3, ledger  # rollback, two steps
        # The promotion moved the registry with the deployment, in one transaction: the
        # version now serving holds the alias that says what production serves.
        assert ledger.count(("deployment.promote", "agent")) == 1 and ledger.count(("registered_model.set_alias", "agent")) == 1, ledger
        champion = requests.get(f"{base}/api/2.0/mlflow/registered-models/alias", params={"name": "canaried", "alias": "champion"}).json()
        assert champion["model_version"]["version"] == "3", champion
        events = requests.get(f"{base}/api/steward/v1/registry/models/canaried/history").json()["events"]
        assert [(e["label"], e["version"], e["actor"]) for e in events if e["kind"] == "alias"] == [("champion", "3", "agent")], events
        # The two challengers a person put on the policy's deployment are recorded as overrides.
        entries = requests.get(f"{base}/api/steward/v1/audit").json()["entries"]
        manual = [e["reason"] for e in entries if e["entity_id"] == "canaried" and e["action"] == "deployment.update" and e["actor"] != "agent"]
        assert len(manual) == 2 and all(r.startswith("manual override of the agent's policy for 'canaried'") for r in manual), manual


def test_stop_switch_moves_traffic_to_the_fallback_at_once(server):
    base = server["url"]
    x, y = make_classification(n_samples=600, n_features=4, random_state=6)
    x = x.astype(np.float32)
    mlflow.set_experiment("stop-switch")
    for seed in (0, 1):
        with mlflow.start_run():
            m = GradientBoostingClassifier(n_estimators=5, random_state=seed).fit(x[seed * 300 : (seed + 1) * 300], y[seed * 300 : (seed + 1) * 300])
            mlflow.onnx.log_model(to_onnx(m, initial_types=[("input", FloatTensorType([None, 4]))]), name="model", registered_model_name="stoppable")
    url = f"{base}/api/steward/v1/deployments"
    assert requests.post(url, json={"name": "stoppable", "model": "models:/stoppable/1"}).status_code == 200
    no_fallback = requests.post(f"{url}/stoppable/stop", json={"reason": "test"})
    assert no_fallback.status_code == 400 and "no fallback" in no_fallback.json()["message"]
    changed = requests.patch(f"{url}/stoppable", json={"model": "models:/stoppable/2"}).json()["deployment"]
    assert changed["fallback"] == "models:/stoppable/1"
    infer = lambda: requests.post(f"{base}/v2/models/stoppable/infer", json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": x[0].tolist()}]}).json()["model_version"]
    assert infer() == "2"
    missing = requests.post(f"{url}/stoppable/stop", json={})
    assert missing.status_code == 400 and "reason" in missing.json()["message"]
    stopped = requests.post(f"{url}/stoppable/stop", json={"reason": "approvals collapsed overnight"})
    assert stopped.status_code == 200, stopped.text
    assert infer() == "1"  # the very next request
    entries = requests.get(f"{base}/api/steward/v1/audit").json()["entries"]
    (last,) = [e for e in entries if e["entity_id"] == "stoppable"][-1:]
    assert last["action"] == "deployment.update" and last["reason"] == "stop switch: approvals collapsed overnight"


def test_promotion_waits_for_a_validator_who_did_not_create_the_version(tmp_path):
    import threading

    from conftest import fresh_backend, start_steward, stop

    backend = fresh_backend(tmp_path)
    cli = lambda *a: subprocess.run([steward_bin(), *a, "--backend-store-uri", backend], check=True, capture_output=True, text=True).stdout.strip()
    tokens = {}
    for user, role in [("sam", "scientist"), ("val", "validator"), ("vic", "validator")]:
        cli("user", "create", user, "--role", role)
        tokens[user] = cli("token", "create", "--user", user)
    (tmp_path / "policy.yaml").write_text(
        "deployment: guarded\napproval: [promote]\n"
        "canary: {steps: [50, 100], min_requests: 20, max_latency_ratio: 50, max_positive_rate_shift: 0.3}\n"
    )
    proc, base = start_steward(backend, str(tmp_path / "artifacts"), flags=("--policy", tmp_path / "policy.yaml"))
    try:
        auth = lambda user: {"Authorization": f"Bearer {tokens[user]}"}
        x, y = make_classification(n_samples=1500, n_features=4, random_state=9)
        x = x.astype(np.float32)
        mlflow.set_tracking_uri(base)
        for user, seed in [("sam", 0), ("vic", 1)]:  # vic creates version 2
            os.environ["MLFLOW_TRACKING_TOKEN"] = tokens[user]
            try:
                mlflow.set_experiment("guarded")
                with mlflow.start_run():
                    m = GradientBoostingClassifier(n_estimators=10, random_state=seed).fit(x[:1000], y[:1000])
                    mlflow.onnx.log_model(to_onnx(m, initial_types=[("input", FloatTensorType([None, 4]))]), name="model", registered_model_name="guarded")
            finally:
                del os.environ["MLFLOW_TRACKING_TOKEN"]
        url = f"{base}/api/steward/v1/deployments"
        # Production is a validator's to change, and serves only an approved version.
        refused = requests.post(url, json={"name": "guarded", "model": "models:/guarded/1"}, headers=auth("sam"))
        assert refused.status_code == 403 and "may not change what a deployment serves" in refused.json()["message"], refused.text
        unapproved = requests.post(url, json={"name": "guarded", "model": "models:/guarded/1"}, headers=auth("val"))
        assert unapproved.status_code == 403 and "holds no protected alias" in unapproved.json()["message"], unapproved.text
        alias = requests.post(f"{base}/api/2.0/mlflow/registered-models/alias", json={"name": "guarded", "alias": "champion", "version": "1"}, headers=auth("val"))
        assert alias.status_code == 200, alias.text
        assert requests.post(url, json={"name": "guarded", "model": "models:/guarded@champion"}, headers=auth("val")).status_code == 200
        own = requests.patch(f"{url}/guarded", json={"challenger": {"model": "models:/guarded/2", "weight": 50}}, headers=auth("vic"))
        assert own.status_code == 403 and "four-eyes" in own.json()["message"], own.text
        assert requests.patch(f"{url}/guarded", json={"challenger": {"model": "models:/guarded/2", "weight": 50}}, headers=auth("val")).status_code == 200
        stop_traffic = threading.Event()

        def traffic():
            s = requests.Session()
            i = 0
            while not stop_traffic.is_set():
                row = x[1000 + i % 500]
                s.post(f"{base}/v2/models/guarded/infer", json={"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": row.tolist()}]}, headers=auth("sam"))
                i += 1

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        try:
            actions = lambda: requests.get(f"{base}/api/steward/v1/agent/actions", params={"status": "pending"}, headers=auth("val")).json()["actions"]
            (pending,) = wait("the promotion to wait for approval", lambda: [a for a in actions() if a["kind"] == "promote"], timeout=60)
            time.sleep(2.5)  # it waits: still the challenger, asked for once
            assert requests.get(f"{url}/guarded", headers=auth("val")).json()["deployment"]["routes"][0]["version"] == 1
            assert len([a for a in actions() if a["kind"] == "promote"]) == 1
            decide = lambda user, d: requests.post(f"{base}/api/steward/v1/agent/actions/{pending['id']}/decision", json={"decision": d, "reason": "reviewed"}, headers=auth(user))
            scientist = decide("sam", "approve")
            assert scientist.status_code == 403 and "may not decide the agent's actions" in scientist.json()["message"]
            creator = decide("vic", "approve")
            assert creator.status_code == 403 and "four-eyes" in creator.json()["message"], creator.text
            assert decide("val", "approve").status_code == 200
            wait("the promotion", lambda: requests.get(f"{url}/guarded", headers=auth("val")).json()["deployment"]["routes"] == [{"role": "champion", "model": "guarded", "version": 2, "weight": 100}])
        finally:
            stop_traffic.set()
            worker.join(timeout=10)
        entries = requests.get(f"{base}/api/steward/v1/audit", headers=auth("val")).json()["entries"]
        approvals = [e for e in entries if e["action"] == "approval.approve"]
        assert [e["actor"] for e in approvals] == ["val"]
        # The promotion moved the alias the deployment follows, and says who approved it.
        champion = requests.get(f"{base}/api/2.0/mlflow/registered-models/alias", params={"name": "guarded", "alias": "champion"}, headers=auth("val")).json()
        assert champion["model_version"]["version"] == "2"
        (promoted,) = [e for e in entries if e["action"] == "deployment.promote"]
        assert promoted["actor"] == "agent" and "approved by val" in promoted["reason"], promoted
    finally:
        stop(proc)
