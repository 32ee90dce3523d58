"""No acknowledged prediction is lost in durable mode: a server killed with SIGKILL in the
middle of a scoring load has, after a restart, a log record for every prediction it answered.
The same load against the fast mode reports how many answered predictions it lost."""

import threading
import time

import mlflow
import requests
from conftest import fresh_backend, start_steward, steward_bin
from test_serving import data, onnx_of, register
from sklearn.linear_model import LogisticRegression
import subprocess


def answered_then_killed(tmp_path, mode):
    """Starts a server in `mode`, scores one-row requests from 8 clients for two seconds,
    kills it with SIGKILL mid-load, restarts it and returns (answered ids, logged ids)."""
    backend = fresh_backend(tmp_path)
    artifacts = str(tmp_path / "artifacts")
    proc, base = start_steward(backend, artifacts, flags=("--prediction-log", mode))
    mlflow.set_tracking_uri(base)
    x, y = data(seed=7)
    register("durable", onnx_of(LogisticRegression(max_iter=500).fit(x, y)))
    out = subprocess.run([steward_bin(), "deploy", "create", "durable", "--model", "models:/durable/1", "--tracking-uri", base], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    answered, stop = [], threading.Event()

    def client(i):
        s = requests.Session()
        n = 0
        while not stop.is_set():
            row = x[(i * 997 + n) % len(x)].tolist()
            n += 1
            try:
                r = s.post(f"{base}/v2/models/durable/infer", json={"inputs": [{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": row}]}, timeout=10)
            except requests.RequestException:
                return  # the server is gone
            if r.status_code == 200:
                answered.append(r.headers["x-steward-prediction-id"])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(2)
    proc.kill()  # SIGKILL: no shutdown, nothing flushed
    proc.wait(timeout=10)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    proc, base = start_steward(backend, artifacts)
    try:
        logged = requests.get(f"{base}/api/steward/v1/deployments/durable/predictions", params={"max_results": 50000}).json()["predictions"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return answered, {p["id"] for p in logged}


def test_a_sigkill_loses_no_answered_prediction_in_durable_mode(tmp_path):
    answered, logged = answered_then_killed(tmp_path / "durable", "durable")
    lost = [i for i in answered if i not in logged]
    print(f"durable mode: {len(answered)} answered before SIGKILL, {len(lost)} of them missing from the log after restart")
    assert len(answered) > 100, "the load did not get going"
    assert not lost, f"{len(lost)} of {len(answered)} answered predictions were lost"


def test_the_fast_mode_loss_window_is_reported(tmp_path):
    answered, logged = answered_then_killed(tmp_path / "fast", "fast")
    lost = [i for i in answered if i not in logged]
    print(f"fast mode: {len(answered)} answered before SIGKILL, {len(lost)} of them missing from the log after restart")
    assert len(answered) > 100, "the load did not get going"


def test_a_deployment_that_cannot_load_is_retried_with_backoff(tmp_path):
    """A stored deployment whose model file changed on disk is refused at load (its digest no
    longer matches) and tried again after 2 s, then 4 s: the resync does not download and parse
    it every round, and the API answers meanwhile with why and when it is tried again."""
    backend = fresh_backend(tmp_path)
    artifacts = tmp_path / "artifacts"
    proc, base = start_steward(backend, str(artifacts))
    mlflow.set_tracking_uri(base)
    x, y = data(seed=8)
    register("backoff", onnx_of(LogisticRegression(max_iter=500).fit(x, y)))
    out = subprocess.run([steward_bin(), "deploy", "create", "backoff", "--model", "models:/backoff/1", "--tracking-uri", base], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    proc.terminate()
    proc.wait(timeout=10)
    (model,) = list(artifacts.rglob("*.onnx"))
    model.write_bytes(model.read_bytes() + b"\0")
    proc, base = start_steward(backend, str(artifacts))
    try:
        seen = {}
        deadline = time.time() + 30
        while len(seen) < 3 and time.time() < deadline:
            d = requests.get(f"{base}/api/steward/v1/deployments/backoff").json()["deployment"]
            if d.get("state") == "failed":
                seen.setdefault(d["failures"], d)
            time.sleep(0.05)
        assert sorted(seen) == [1, 2, 3], seen
        assert "digest" in seen[1]["error"], seen[1]
        # The wait doubles: at most 2 s after the first failure, 4 s after the second.
        assert 0 < seen[1]["retry_in_ms"] <= 2000 and 2000 < seen[2]["retry_in_ms"] <= 4000 and 4000 < seen[3]["retry_in_ms"] <= 8000, seen
        assert requests.get(f"{base}/health").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
