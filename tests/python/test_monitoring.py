"""Monitoring acceptance: a monitor on a deployment judges windows of predictions against the
reference profile; a stationary stream raises no alert, and a drift alert follows within the
first window after a shift, delivered to a webhook as a Slack-compatible payload."""

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import mlflow
import numpy as np
import pandas as pd
import requests
from conftest import steward_bin
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier

WINDOW = 100  # requests per window
BATCH = 10  # rows per request: windows of 1,000 rows


class Hook(BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def send(session, url, rows):
    for i in range(0, len(rows), BATCH):
        batch = rows[i : i + BATCH]
        r = session.post(url, json={"inputs": [{"name": "input", "shape": list(batch.shape), "datatype": "FP32", "data": batch.ravel().tolist()}]})
        assert r.status_code == 200, r.text


def wait_for_windows(base, name, n, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        series = requests.get(f"{base}/api/steward/v1/deployments/{name}/monitor/metrics", params={"metric": "drift_share"}).json()["metrics"]
        if len(series) >= n:
            return series
        time.sleep(0.2)
    raise AssertionError(f"only {len(series)} of {n} windows judged")


def test_drift_alert_after_a_shift_and_none_before(server, tmp_path):
    x, y = make_classification(n_samples=9000, n_features=8, n_informative=5, random_state=3)
    x = x.astype(np.float32)
    reference, live = x[:3000], x[3000:]
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(reference, y[:3000])
    name = "monitored"
    mlflow.set_experiment("monitoring")  # not whatever an earlier test left active
    with mlflow.start_run():
        info = mlflow.onnx.log_model(to_onnx(model, initial_types=[("input", FloatTensorType([None, 8]))]), name="model", registered_model_name=name)
    base = server["url"]
    subprocess.run([steward_bin(), "deploy", "create", name, "--model", f"models:/{name}/{info.registered_model_version}", "--tracking-uri", base], check=True, capture_output=True)
    pd.DataFrame(reference, columns=[f"f{i}" for i in range(8)]).to_csv(tmp_path / "reference.csv", index=False)

    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    proc = subprocess.run([steward_bin(), "monitor", "create", name, "--reference", str(tmp_path / "reference.csv"), "--window-size", str(WINDOW),
                           "--webhook", f"http://127.0.0.1:{hook.server_port}/hook", "--tracking-uri", base], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "8 features" in proc.stdout

    url = f"{base}/v2/models/{name}/infer"
    session = requests.Session()
    rows = WINDOW * BATCH
    send(session, url, live[: 4 * rows])  # stationary: four windows
    stationary = wait_for_windows(base, name, 4)
    assert all(m["value"] < 0.5 for m in stationary), stationary
    assert requests.get(f"{base}/api/steward/v1/alerts", params={"deployment": name}).json()["alerts"] == []

    shifted = live[4 * rows : 5 * rows] + 1.5 * reference.std(axis=0)  # every feature moves by 1.5 sd
    send(session, url, shifted)
    series = wait_for_windows(base, name, 5)
    assert series[-1]["value"] >= 0.5
    alerts = requests.get(f"{base}/api/steward/v1/alerts", params={"deployment": name}).json()["alerts"]
    assert len(alerts) == 1 and alerts[0]["kind"] == "data_drift", alerts
    assert "Data drift on deployment 'monitored'" in alerts[0]["message"]

    deadline = time.time() + 15
    while not Hook.received and time.time() < deadline:
        time.sleep(0.1)
    assert Hook.received and Hook.received[0]["text"] == alerts[0]["message"]
    assert Hook.received[0]["alert"]["id"] == alerts[0]["id"]
    deadline = time.time() + 5
    while time.time() < deadline and not requests.get(f"{base}/api/steward/v1/alerts", params={"deployment": name}).json()["alerts"][0]["delivered"]:
        time.sleep(0.1)
    assert requests.get(f"{base}/api/steward/v1/alerts", params={"deployment": name}).json()["alerts"][0]["delivered"]

    per_feature = requests.get(f"{base}/api/steward/v1/deployments/{name}/monitor/metrics", params={"metric": "drift_detected"}).json()["metrics"]
    assert {m["feature"] for m in per_feature} == {f"f{i}" for i in range(8)}
    hook.shutdown()
