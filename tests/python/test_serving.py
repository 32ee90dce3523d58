"""Serving acceptance: a model logged with the unmodified MLflow client, aliased and deployed
with `steward deploy`, answers tritonclient (binary and JSON), KServe v1 and MLflow's scoring
protocol with onnxruntime's numbers; traffic splits, shadow routes, hot swaps under load, bad
input, the prediction log and feedback."""

import concurrent.futures
import subprocess
import threading
import time
import uuid

import mlflow
import numpy as np
import onnxruntime as ort
import pytest
import requests
import tritonclient.http as triton
from conftest import steward_bin
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

FEATURES = 8


def data(seed=0, rows=2000):
    x, y = make_classification(n_samples=rows, n_features=FEATURES, n_informative=5, random_state=seed)
    return x.astype(np.float32), y


def onnx_of(model):
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, FEATURES]))])


def register(name, onx):
    """Logs an ONNX model with mlflow.onnx and registers it; returns the version number."""
    mlflow.set_experiment("serving")  # not whatever an earlier test left active
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="model", registered_model_name=name)
    return int(info.registered_model_version)


def deploy(server, *args):
    proc = subprocess.run([steward_bin(), "deploy", *args, "--tracking-uri", server["url"]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def gb_model():
    x, y = data()
    return onnx_of(GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(x, y))


def logged_prediction(server, prediction_id, timeout=15):
    """The logged record of a prediction, once the log writer has stored it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = requests.get(f"{server['url']}/api/steward/v1/predictions/{prediction_id}")
        if r.status_code == 200:
            return r.json()["prediction"]
        time.sleep(0.1)
    raise AssertionError(f"prediction {prediction_id} was never logged")


def test_tritonclient_binary_and_json_match_onnxruntime(server, gb_model):
    name = unique("fraud")
    version = register(name, gb_model)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    out = deploy(server, "create", name, "--model", f"models:/{name}@champion")
    assert f"champion {name}/{version}" in out

    host = server["url"].removeprefix("http://")
    client = triton.InferenceServerClient(host)
    assert client.is_server_live() and client.is_model_ready(name)
    meta = client.get_model_metadata(name)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, FEATURES]}]

    x, _ = data(seed=5, rows=500)
    x[::17, 3] = np.nan  # trees take missing values
    label, proba = ort.InferenceSession(gb_model.SerializeToString()).run(None, {"input": x})
    proba = np.array([[row[0], row[1]] for row in proba], dtype=np.float32)
    for binary in (True, False):
        tensor = triton.InferInput("input", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("output_label", "output_probability")]
        result = client.infer(name, [tensor], outputs=outputs)
        np.testing.assert_array_equal(result.as_numpy("output_label"), label)
        np.testing.assert_allclose(result.as_numpy("output_probability"), proba, rtol=0, atol=1e-5)
        assert result.get_response()["parameters"]["prediction_id"]
    # The default request (no outputs named) asks for every output in binary.
    tensor = triton.InferInput("input", list(x[:3].shape), "FP32")
    tensor.set_data_from_numpy(x[:3])
    np.testing.assert_array_equal(client.infer(name, [tensor]).as_numpy("output_label"), label[:3])


def test_row_protocols_match_onnxruntime(server, gb_model):
    name = unique("rows")
    version = register(name, gb_model)
    deploy(server, "create", name, "--model", f"models:/{name}/{version}")
    x, _ = data(seed=6, rows=20)
    label, proba = ort.InferenceSession(gb_model.SerializeToString()).run(None, {"input": x})
    columns = [f"f{i}" for i in range(FEATURES)]
    url = server["url"]
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": columns, "data": x.tolist()}},
        "dataframe_records": {"dataframe_records": [dict(zip(columns, map(float, row))) for row in x]},
        "instances": {"instances": x.tolist()},
        "inputs": {"inputs": {"input": x.tolist()}},
    }
    for kind, body in bodies.items():
        r = requests.post(f"{url}/deployments/{name}/invocations", json=body)
        assert r.status_code == 200, (kind, r.text)
        preds = r.json()["predictions"]
        assert [p["output_label"] for p in preds] == label.tolist(), kind
        np.testing.assert_allclose([p["output_probability"][1] for p in preds], [p[1] for p in proba], atol=1e-5)
        assert r.headers["x-steward-prediction-id"]
    csv = ",".join(columns) + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in x)
    r = requests.post(f"{url}/deployments/{name}/invocations", data=csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert [p["output_label"] for p in r.json()["predictions"]] == label.tolist()
    r = requests.post(f"{url}/v1/models/{name}:predict", json={"instances": x.tolist()})
    assert r.status_code == 200, r.text
    assert [p["output_label"] for p in r.json()["predictions"]] == label.tolist()
    assert requests.get(f"{url}/v1/models/{name}").json() == {"name": name, "ready": True}


def test_split_and_shadow(server, gb_model):
    name = unique("split")
    x, y = data()
    champion = register(name, gb_model)
    challenger = register(name, onnx_of(GradientBoostingClassifier(n_estimators=20, random_state=1).fit(x, y)))
    shadow = register(name, onnx_of(LogisticRegression(max_iter=500).fit(x, y)))
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", champion)
    client.set_registered_model_alias(name, "challenger", challenger)
    deploy(server, "create", name, "--model", f"models:/{name}@champion", "--challenger", f"models:/{name}@challenger",
           "--challenger-weight", "10", "--shadow", f"models:/{name}/{shadow}")

    url = f"{server['url']}/v2/models/{name}/infer"
    session = requests.Session()
    answered = {}
    for i in range(10_000):
        row = x[i % len(x)]
        r = session.post(url, json={"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": row.tolist()}]})
        assert r.status_code == 200, r.text
        body = r.json()
        answered[body["parameters"]["prediction_id"]] = int(body["model_version"])
    versions = list(answered.values())
    assert set(versions) == {champion, challenger}, "shadow answers must never be returned"
    share = versions.count(challenger)
    # Binomial(10000, 0.1): mean 1000, sd 30; 4 sd either way.
    assert 880 <= share <= 1120, share

    # Sticky routing: one key always lands on one route.
    keyed = {session.post(url, headers={"X-Steward-Routing-Key": "customer-42"},
                          json={"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": x[0].tolist()}]}).json()["model_version"]
             for _ in range(50)}
    assert len(keyed) == 1

    # Every shadow answer is logged with the prediction it shadowed, none is returned.
    deadline = time.time() + 30
    while True:
        records = requests.get(f"{server['url']}/api/steward/v1/deployments/{name}/predictions", params={"max_results": 50000}).json()["predictions"]
        shadows = [r for r in records if r["route"] == "shadow"]
        if len(shadows) >= 10_050 or time.time() > deadline:
            break
        time.sleep(0.2)
    assert len(shadows) == 10_050
    assert all(r["version"] == shadow for r in shadows)
    assert {r["parent_id"] for r in shadows} >= set(answered)
    assert not set(r["id"] for r in shadows) & set(answered)


def test_alias_swap_under_load_drops_nothing(server, gb_model):
    name = unique("swap")
    x, y = data()
    v1 = register(name, gb_model)
    v2 = register(name, onnx_of(GradientBoostingClassifier(n_estimators=30, random_state=2).fit(x, y)))
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, "champion", v1)
    deploy(server, "create", name, "--model", f"models:/{name}@champion")

    url = f"{server['url']}/v2/models/{name}/infer"
    stop = threading.Event()

    def load():
        s = requests.Session()
        seen, failures, n = set(), [], 0
        while not stop.is_set():
            r = s.post(url, json={"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": x[n % 100].tolist()}]})
            n += 1
            if r.status_code != 200:
                failures.append(r.text)
            else:
                seen.add(int(r.json()["model_version"]))
        return seen, failures, n

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(load) for _ in range(4)]
        time.sleep(1.0)
        client.set_registered_model_alias(name, "champion", v2)
        deadline = time.time() + 10
        while time.time() < deadline:
            r = requests.post(url, json={"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": x[0].tolist()}]})
            if r.json()["model_version"] == str(v2):
                break
            time.sleep(0.05)
        time.sleep(1.0)
        stop.set()
        results = [f.result() for f in futures]
    seen = set().union(*(r[0] for r in results))
    failures = [f for r in results for f in r[1]]
    total = sum(r[2] for r in results)
    assert total > 200
    assert failures == []
    assert seen == {v1, v2}


def test_bad_input_names_the_offending_input(server, gb_model):
    name = unique("bad")
    x, y = data()
    version = register(name, onnx_of(LogisticRegression(max_iter=500).fit(x, y)))
    deploy(server, "create", name, "--model", f"models:/{name}/{version}")
    url = f"{server['url']}/v2/models/{name}/infer"

    def infer(inputs):
        return requests.post(url, json={"inputs": inputs})

    row = x[0].tolist()
    cases = {
        "wrong shape": ([{"name": "input", "shape": [1, 7], "datatype": "FP32", "data": row[:7]}], 400, "input 'input' has shape [1, 7]"),
        "wrong dtype": ([{"name": "input", "shape": [1, 8], "datatype": "INT64", "data": [1] * 8}], 400, "input 'input' has datatype INT64"),
        "missing input": ([], 400, "input 'input' is missing"),
        "unknown input": ([{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": row},
                           {"name": "extra", "shape": [1], "datatype": "FP32", "data": [1]}], 400, "'extra' is not an input"),
        "value count": ([{"name": "input", "shape": [2, 8], "datatype": "FP32", "data": row}], 400, "input 'input' has 8 values"),
        "NaN": ([{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": [None] + row[1:]}], 400, "input 'input' contains NaN"),
        "not a number": ([{"name": "input", "shape": [1, 8], "datatype": "FP32", "data": ["x"] + row[1:]}], 400, "input 'input' element 0"),
    }
    for case, (inputs, status, message) in cases.items():
        r = infer(inputs)
        assert r.status_code == status, (case, r.status_code, r.text)
        assert message in r.json()["error"], (case, r.json())
    r = requests.post(f"{server['url']}/v2/models/no-such-deployment/infer", json={"inputs": []})
    assert r.status_code == 404 and "no-such-deployment" in r.json()["error"]
    r = requests.post(url, data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    r = requests.post(f"{server['url']}/deployments/{name}/invocations", json={"dataframe_split": {"columns": ["a"], "data": [[1.0]]}})
    assert r.status_code == 400 and "input 'input'" in r.json()["error"]
    # Deploying what cannot be served is refused and leaves nothing behind.
    proc = subprocess.run([steward_bin(), "deploy", "create", unique("ghost"), "--model", f"models:/{name}@nope",
                           "--tracking-uri", server["url"]], capture_output=True, text=True)
    assert proc.returncode == 1 and "nope" in proc.stderr


def test_prediction_log_feedback_and_metrics(server, gb_model):
    name = unique("log")
    version = register(name, gb_model)
    deploy(server, "create", name, "--model", f"models:/{name}/{version}")
    x, _ = data(rows=10)
    r = requests.post(f"{server['url']}/v2/models/{name}/infer",
                      json={"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": x[0].tolist()}],
                            "parameters": {"context": {"age_band": "40-49"}}})
    prediction_id = r.json()["parameters"]["prediction_id"]
    record = logged_prediction(server, prediction_id)
    assert record["deployment"] == name and record["version"] == version and record["route"] == "champion"
    assert record["inputs"]["input"]["shape"] == [1, FEATURES]
    np.testing.assert_allclose(record["inputs"]["input"]["data"], x[0], rtol=1e-6)
    assert record["context"] == {"age_band": "40-49"}
    assert record["latency_us"] >= 0

    fb = requests.post(f"{server['url']}/api/steward/v1/feedback", json={"feedback": [{"prediction_id": prediction_id, "label": 1}]})
    assert fb.status_code == 200, fb.text
    assert logged_prediction(server, prediction_id)["label"] == 1
    # All or nothing: one unknown id refuses the batch.
    fb = requests.post(f"{server['url']}/api/steward/v1/feedback",
                       json={"feedback": [{"prediction_id": prediction_id, "label": 0}, {"prediction_id": "nope", "label": 1}]})
    assert fb.status_code == 404 and "nope" in fb.json()["message"]
    assert logged_prediction(server, prediction_id)["label"] == 1

    metrics = requests.get(f"{server['url']}/metrics").text
    assert f'steward_requests_total{{deployment="{name}",route="champion",model="{name}",version="{version}"}} 1' in metrics
    assert "steward_prediction_log_queue_depth" in metrics and "steward_prediction_log_dropped_total 0" in metrics
    assert f'steward_request_duration_seconds_count{{deployment="{name}"' in metrics

    listed = deploy(server, "list")
    assert name in listed
    deploy(server, "delete", name)
    assert name not in deploy(server, "list")
    assert requests.post(f"{server['url']}/v2/models/{name}/infer", json={"inputs": []}).status_code == 404


def test_batch_predict_from_the_registry(server, gb_model, tmp_path):
    name = unique("batch")
    version = register(name, gb_model)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    x, _ = data(seed=9, rows=300)
    x[::11, 2] = np.nan
    import pandas as pd
    pd.DataFrame(x, columns=[f"f{i}" for i in range(FEATURES)]).to_parquet(tmp_path / "rows.parquet")
    proc = subprocess.run([steward_bin(), "predict", "--model", f"models:/{name}@champion", "--tracking-uri", server["url"],
                           "--input", str(tmp_path / "rows.parquet"), "--output", str(tmp_path / "scored.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    scored = pd.read_csv(tmp_path / "scored.csv")
    label, proba = ort.InferenceSession(gb_model.SerializeToString()).run(None, {"input": x})
    assert scored["output_label"].tolist() == label.tolist()
    np.testing.assert_allclose(scored["output_probability_1"], [p[1] for p in proba], atol=1e-5)
    proc = subprocess.run([steward_bin(), "predict", "--model", f"models:/{name}@missing", "--tracking-uri", server["url"],
                           "--input", str(tmp_path / "rows.parquet"), "--output", str(tmp_path / "x.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "missing" in proc.stderr
