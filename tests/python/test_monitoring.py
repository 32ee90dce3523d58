"""Monitoring acceptance: a monitor on a deployment judges windows of predictions against the
reference profile; a stationary stream raises no alert, and a drift alert follows within the
first window after a shift, delivered to a webhook as a Slack-compatible payload. Quality is
judged once labels arrive (checked against scikit-learn), fairness by a protected attribute sent
as context (checked against Fairlearn), and the error rate from failed requests."""

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
from sklearn.metrics import roc_auc_score

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


def deploy(base, name, model, features):
    mlflow.set_experiment("monitoring")  # not whatever an earlier test left active
    with mlflow.start_run():
        info = mlflow.onnx.log_model(to_onnx(model, initial_types=[("input", FloatTensorType([None, features]))]), name="model", registered_model_name=name)
    subprocess.run([steward_bin(), "deploy", "create", name, "--model", f"models:/{name}/{info.registered_model_version}", "--tracking-uri", base], check=True, capture_output=True)


def alerts_of(base, name):
    return requests.get(f"{base}/api/steward/v1/alerts", params={"deployment": name}).json()["alerts"]


def test_drift_alert_after_a_shift_and_none_before(server, tmp_path):
    x, y = make_classification(n_samples=10000, n_features=8, n_informative=5, random_state=3)
    x = x.astype(np.float32)
    # Trained on the first 3000 rows; the reference is held out, so that the model's scores on
    # it stand for its scores on live data (prediction drift).
    train, reference, live = x[:3000], x[3000:4500], x[4500:]
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(train, y[:3000])
    name = "monitored"
    base = server["url"]
    deploy(base, name, model, 8)
    pd.DataFrame(reference, columns=[f"f{i}" for i in range(8)]).to_csv(tmp_path / "reference.csv", index=False)

    # Alerts go only to hosts the server allows (the session's server allows 127.0.0.1).
    refused = subprocess.run([steward_bin(), "monitor", "create", name, "--reference", str(tmp_path / "reference.csv"), "--window-size", str(WINDOW),
                              "--webhook", "http://169.254.169.254/latest/meta-data", "--tracking-uri", base], capture_output=True, text=True)
    assert refused.returncode != 0 and "webhook host '169.254.169.254' is not allowed by this server" in refused.stderr, refused.stderr
    hook = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    proc = subprocess.run([steward_bin(), "monitor", "create", name, "--reference", str(tmp_path / "reference.csv"), "--window-size", str(WINDOW),
                           "--webhook", f"http://127.0.0.1:{hook.server_port}/hook", "--tracking-uri", base], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "8 features, prediction drift" in proc.stdout, proc.stdout

    url = f"{base}/v2/models/{name}/infer"
    session = requests.Session()
    rows = WINDOW * BATCH
    send(session, url, live[: 4 * rows])  # stationary: four windows
    time.sleep(0.01)  # the shifted rows come strictly later
    stationary = wait_for_windows(base, name, 4)
    assert all(m["value"] < 0.5 for m in stationary), stationary
    assert alerts_of(base, name) == []
    prediction = requests.get(f"{base}/api/steward/v1/deployments/{name}/monitor/metrics", params={"metric": "prediction_drift"}).json()["metrics"]
    assert [m["value"] for m in prediction] == [0.0] * 4

    shifted = live[4 * rows : 5 * rows] + 1.5 * reference.std(axis=0)  # every feature moves by 1.5 sd
    send(session, url, shifted)
    series = wait_for_windows(base, name, 5)
    assert series[-1]["value"] >= 0.5
    alerts = alerts_of(base, name)
    drift = [a for a in alerts if a["kind"] == "data_drift"]
    assert len(drift) == 1 and {a["kind"] for a in alerts} <= {"data_drift", "prediction_drift"}, alerts
    assert "Data drift on deployment 'monitored'" in drift[0]["message"]

    deadline = time.time() + 15
    while len(Hook.received) < len(alerts) and time.time() < deadline:
        time.sleep(0.1)
    got = {h["alert"]["id"]: h for h in Hook.received}
    assert got[drift[0]["id"]]["text"] == drift[0]["message"]
    deadline = time.time() + 5
    while time.time() < deadline and not all(a["delivered"] for a in alerts_of(base, name)):
        time.sleep(0.1)
    assert all(a["delivered"] for a in alerts_of(base, name))

    per_feature = requests.get(f"{base}/api/steward/v1/deployments/{name}/monitor/metrics", params={"metric": "drift_detected"}).json()["metrics"]
    assert {m["feature"] for m in per_feature} == {f"f{i}" for i in range(8)}
    # The series pages: every row once, in order, whatever the page size.
    metrics_url = f"{base}/api/steward/v1/deployments/{name}/monitor/metrics"
    whole = requests.get(metrics_url).json()
    assert "next_page_token" not in whole
    paged, token = [], None
    while True:
        page = requests.get(metrics_url, params={"max_results": 7, **({"page_token": token} if token else {})}).json()
        assert len(page["metrics"]) <= 7
        paged.extend(page["metrics"])
        token = page.get("next_page_token")
        if not token:
            break
    assert paged == whole["metrics"] and len(paged) > 7
    bad = requests.get(metrics_url, params={"page_token": "not-a-token"})
    assert bad.status_code == 400 and "page token" in bad.json()["message"], bad.text
    assert requests.get(metrics_url, params={"max_results": 50_001}).status_code == 400

    # The drift holds for ten windows in all: still one alert, firing, notified once; the
    # first stationary window after it resolves it, and that is notified once.
    for w in range(9):
        start = (w % 5) * rows  # the live rows again, shifted
        send(session, url, live[start : start + rows] + 1.5 * reference.std(axis=0))
    series = wait_for_windows(base, name, 14)
    assert all(m["value"] >= 0.5 for m in series[4:14]), series
    (drift,) = [a for a in alerts_of(base, name) if a["kind"] == "data_drift"]
    assert drift["status"] == "firing" and drift["last_seen"] == series[13]["window_end"], drift
    send(session, url, live[: rows])
    wait_for_windows(base, name, 15)
    (drift,) = [a for a in alerts_of(base, name) if a["kind"] == "data_drift"]
    assert drift["status"] == "resolved" and drift["resolved_at"] >= drift["last_seen"], drift
    deadline = time.time() + 15
    notices = lambda: [(h["status"], h["text"]) for h in Hook.received if h["alert"]["id"] == drift["id"]]
    while len(notices()) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert [s for s, _ in notices()] == ["firing", "resolved"], notices()
    assert notices()[1][1].startswith("Resolved: Data drift on deployment 'monitored'"), notices()
    hook.shutdown()


def test_quality_fairness_and_errors(server, tmp_path):
    from fairlearn.metrics import demographic_parity_ratio

    x, y = make_classification(n_samples=6000, n_features=6, n_informative=4, random_state=5)
    x = x.astype(np.float32)
    model = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(x[:2000], y[:2000])
    name = "judged"
    base = server["url"]
    deploy(base, name, model, 6)
    pd.DataFrame(x[2000:3500], columns=[f"f{i}" for i in range(6)]).to_csv(tmp_path / "reference.csv", index=False)
    (tmp_path / "spec.yaml").write_text(
        "quality: {min_roc_auc: 0.75}\n"
        "fairness: {attribute: group, favorable: 0, min_ratio: 0.8, min_group_rows: 20}\n"
        "slo: {max_error_rate: 0.5}\n"
    )
    window = 40
    proc = subprocess.run([steward_bin(), "monitor", "create", name, "--reference", str(tmp_path / "reference.csv"), "--window-size", str(window),
                           "--spec", str(tmp_path / "spec.yaml"), "--tracking-uri", base], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "quality from labels, fairness" in proc.stdout, proc.stdout

    session = requests.Session()
    url = f"{base}/v2/models/{name}/infer"
    rng = np.random.default_rng(0)

    def score(rows, groups):
        body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}],
                "parameters": {"context": {"group": groups}}}
        r = session.post(url, json=body)
        assert r.status_code == 200, r.text
        out = {o["name"]: o["data"] for o in r.json()["outputs"]}
        return r.headers["X-Steward-Prediction-Id"], out["output_label"], out["output_probability"][1::2]

    def metric(name_, n):
        deadline = time.time() + 30
        while time.time() < deadline:
            m = requests.get(f"{base}/api/steward/v1/deployments/{name}/monitor/metrics", params={"metric": name_}).json()["metrics"]
            if len(m) >= n:
                return m
            time.sleep(0.2)
        raise AssertionError(f"{name_}: {len(m)} of {n} windows")

    # Window 1: groups drawn independently of the rows; 3 malformed requests fail.
    first, live = [], x[3500:]
    for i in range(window):
        rows = live[i * BATCH : (i + 1) * BATCH]
        groups = rng.choice(["A", "B"], BATCH).tolist()
        first.append((*score(rows, groups), groups, y[3500 + i * BATCH : 3500 + (i + 1) * BATCH]))
        if i < 3:
            bad = session.post(url, json={"inputs": [{"name": "input", "shape": [1, 5], "datatype": "FP32", "data": [0.0] * 5}]})
            assert bad.status_code == 400
    metric("adverse_impact_ratio", 1)  # judged before window 2 starts: its error rate is its own
    time.sleep(0.01)
    # Window 2: group B is whoever the model turns down (label 1), so B is favoured less.
    second = []
    for i in range(window, 2 * window):
        rows = live[i * BATCH : (i + 1) * BATCH]
        labels = model.predict(rows)
        groups = ["B" if l == 1 and rng.random() < 0.8 else "A" for l in labels]
        second.append((*score(rows, groups), groups, y[3500 + i * BATCH : 3500 + (i + 1) * BATCH]))

    air = metric("adverse_impact_ratio", 2)
    for (w, batch) in zip(air, [first, second]):
        pred = np.concatenate([b[1] for b in batch])
        groups = np.concatenate([b[3] for b in batch])
        favourable = (pred == 0).astype(int)
        want = demographic_parity_ratio(favourable, favourable, sensitive_features=groups)
        assert abs(w["value"] - want) <= 1e-9 * max(1.0, abs(want)), (w, want)
    assert air[0]["value"] >= 0.8 > air[1]["value"]
    error_rate = metric("error_rate", 1)[0]["value"]
    assert abs(error_rate - 3 / (window + 3)) < 1e-12, error_rate

    # Labels arrive: true labels for window 1, inverted ones (concept drift) for window 2.
    for batch, flip in [(first, False), (second, True)]:
        fb = [{"prediction_id": pid, "label": [int(1 - t) if flip else int(t) for t in truth]} for pid, _, _, _, truth in batch]
        r = requests.post(f"{base}/api/steward/v1/feedback", json={"feedback": fb})
        assert r.status_code == 200, r.text
        time.sleep(0.01)  # the second batch's labels arrive strictly later
    auc = metric("roc_auc", 2)
    for (w, batch, flip) in zip(auc, [first, second], [False, True]):
        truth = np.concatenate([b[4] for b in batch])
        truth = 1 - truth if flip else truth
        want = roc_auc_score(truth, np.concatenate([b[2] for b in batch]))
        assert abs(w["value"] - want) <= 1e-9, (w, want)
    assert auc[0]["value"] >= 0.75 > auc[1]["value"]
    kinds = sorted(a["kind"] for a in alerts_of(base, name))
    assert kinds == ["fairness", "quality"], kinds


def test_time_windows(server, tmp_path):
    x, y = make_classification(n_samples=2000, n_features=4, random_state=8)
    x = x.astype(np.float32)
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x[:1000], y[:1000])
    name = "timed"
    base = server["url"]
    deploy(base, name, model, 4)
    pd.DataFrame(x[1000:1500], columns=[f"f{i}" for i in range(4)]).to_csv(tmp_path / "reference.csv", index=False)
    proc = subprocess.run([steward_bin(), "monitor", "create", name, "--reference", str(tmp_path / "reference.csv"), "--window-seconds", "1",
                           "--no-prediction-drift", "--tracking-uri", base], capture_output=True, text=True)
    assert proc.returncode == 0 and "1-second windows" in proc.stdout, proc.stdout + proc.stderr
    session = requests.Session()
    for burst in range(2):
        for i in range(15):
            rows = x[1500 + burst * 150 + i * 10 : 1500 + burst * 150 + (i + 1) * 10]
            r = session.post(f"{base}/v2/models/{name}/infer", json={"inputs": [{"name": "input", "shape": [10, 4], "datatype": "FP32", "data": rows.ravel().tolist()}]})
            assert r.status_code == 200
        time.sleep(2.2)  # a gap: the bursts fall in different windows
    deadline = time.time() + 15
    while time.time() < deadline:
        counts = requests.get(f"{base}/api/steward/v1/deployments/{name}/monitor/metrics", params={"metric": "predictions"}).json()["metrics"]
        if sum(m["value"] for m in counts) >= 30:
            break
        time.sleep(0.3)
    # Every prediction judged once, in windows of at most a second; the empty second between the
    # bursts is skipped (a burst may straddle a window boundary).
    assert sum(m["value"] for m in counts) == 30 and 2 <= len(counts) <= 4, counts
    for w in counts:
        assert 0 <= w["window_end"] - w["window_start"] < 1000, w
    assert max(b["window_start"] - a["window_end"] for a, b in zip(counts, counts[1:])) > 1000
