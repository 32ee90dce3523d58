"""Memory per request is bounded: a 60 MiB CSV scored through MLflow's invocations protocol,
and a 60 MiB Open Inference Protocol JSON request, raise the server's peak resident memory by
less than three times the body, and the CSV's memory is given back once the answer is sent. A deployment's row limit refuses a larger request with 413
as the row past it is read."""

import contextlib
import socket
import time

import mlflow
import requests
from conftest import fresh_backend, start_steward, stop
from sklearn.linear_model import LogisticRegression
from test_serving import FEATURES, data, onnx_of, register

MIB = 1 << 20


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def csv_of(rows, size):
    """A CSV body of at least `size` bytes: a header of feature names (not the model's input
    name, so the columns form its matrix), then the rows repeated; returns (body, row count)."""
    lines = [",".join(repr(float(v)) for v in row) for row in rows]
    header = ",".join(f"f{i}" for i in range(FEATURES))
    chunk = "\n".join(lines) + "\n"
    repeats = size // len(chunk) + 1
    return (header + "\n" + chunk * repeats).encode(), len(lines) * repeats


@contextlib.contextmanager
def deployed(tmp_path, name, seed, **fields):
    """A server of the test's own serving a logistic regression as deployment `name` (with
    these extra deployment fields); yields (process, url, features)."""
    proc, base = start_steward(fresh_backend(tmp_path), str(tmp_path / "artifacts"))
    try:
        mlflow.set_tracking_uri(base)
        x, y = data(seed=seed)
        register(name, onnx_of(LogisticRegression(max_iter=500).fit(x, y)))
        r = requests.post(f"{base}/api/steward/v1/deployments", json={"name": name, "model": f"models:/{name}/1", **fields})
        assert r.status_code == 200, r.text
        yield proc, base, x
    finally:
        stop(proc)


def test_a_60_mib_csv_peaks_under_three_times_its_size_and_is_given_back(tmp_path):
    with deployed(tmp_path, "big-csv", 3) as (proc, base, x):
        url = f"{base}/deployments/big-csv/invocations"
        small, n_small = csv_of(x[:50], 0)
        r = requests.post(url, data=small, headers={"Content-Type": "text/csv"})
        assert r.status_code == 200, r.text  # the model is loaded and the paths are warm

        body, rows = csv_of(x, 60 * MIB)
        baseline = status_kb(proc.pid, "VmRSS") * 1024
        with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
            f.write("5")  # resets the peak (VmHWM) to the current resident size
        r = requests.post(url, data=body, headers={"Content-Type": "text/csv"}, timeout=600)
        assert r.status_code == 200, r.text[:500]
        predictions = r.json()["predictions"]
        assert len(predictions) == rows
        assert [p["output_label"] for p in predictions[:50]] == [p["output_label"] for p in requests.post(url, data=small, headers={"Content-Type": "text/csv"}).json()["predictions"]]
        del predictions, r
        peak = status_kb(proc.pid, "VmHWM") * 1024
        growth = peak - baseline
        print(f"60 MiB CSV: body {len(body) / MIB:.1f} MiB ({rows} rows), resident before {baseline / MIB:.0f} MiB, "
              f"peak {peak / MIB:.0f} MiB: growth {growth / MIB:.0f} MiB = {growth / len(body):.2f}x the body")
        assert growth < 3 * len(body), f"scoring a {len(body)}-byte CSV grew the server by {growth} bytes ({growth / len(body):.2f}x)"

        # Given back: resident memory returns to near where it started once the answer is sent
        # and the prediction is logged (the log writer and the answer give memory back).
        deadline, rss = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            rss = status_kb(proc.pid, "VmRSS") * 1024
            if rss < baseline + len(body) // 2:
                break
            time.sleep(0.2)
        print(f"resident after: {rss / MIB:.0f} MiB (before: {baseline / MIB:.0f} MiB)")
        assert rss < baseline + len(body) // 2, f"the server still holds {(rss - baseline) / MIB:.0f} MiB more than before the request"


def test_a_60_mib_oip_json_request_peaks_under_three_times_its_size(tmp_path):
    """The Open Inference Protocol's JSON `data` is read straight into numbers, and the body is
    let go once the tensors are made (MLflow's JSON frames are still read as a tree of values:
    about 5x their size)."""
    import json
    with deployed(tmp_path, "big-json", 5) as (proc, base, x):
        url = f"{base}/v2/models/big-json/infer"
        one = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": x[0].tolist()}]}
        assert requests.post(url, json=one).status_code == 200
        sample = [list(map(float, r)) for r in x]
        per_row = len(json.dumps(sample)) / len(sample)
        rows = (sample * (int(60 * MIB / per_row) // len(sample) + 1))[: int(60 * MIB / per_row)]
        body = json.dumps({"inputs": [{"name": "input", "shape": [len(rows), FEATURES], "datatype": "FP32", "data": rows}]}).encode()
        baseline = status_kb(proc.pid, "VmRSS") * 1024
        with open(f"/proc/{proc.pid}/clear_refs", "w") as f:
            f.write("5")
        r = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=600)
        assert r.status_code == 200, r.text[:500]
        labels = next(o for o in r.json()["outputs"] if o["name"] == "output_label")
        assert labels["shape"][0] == len(rows)
        del r, labels
        growth = status_kb(proc.pid, "VmHWM") * 1024 - baseline
        print(f"60 MiB OIP JSON: body {len(body) / MIB:.1f} MiB ({len(rows)} rows): growth {growth / MIB:.0f} MiB = {growth / len(body):.2f}x the body")
        assert growth < 3 * len(body), f"scoring a {len(body)}-byte JSON request grew the server by {growth} bytes ({growth / len(body):.2f}x)"


def test_a_deployment_row_limit_refuses_larger_requests_with_413(tmp_path):
    with deployed(tmp_path, "capped", 4, max_rows_per_request=100) as (proc, base, x):
        assert requests.get(f"{base}/api/steward/v1/deployments/capped").json()["deployment"]["max_rows_per_request"] == 100
        url = f"{base}/deployments/capped/invocations"
        ok, n = csv_of(x[:100], 0)
        assert requests.post(url, data=ok, headers={"Content-Type": "text/csv"}).status_code == 200
        over, _ = csv_of(x[:101], 0)
        for r in [
            requests.post(url, data=over, headers={"Content-Type": "text/csv"}),
            requests.post(url, json={"dataframe_split": {"columns": [f"f{i}" for i in range(FEATURES)], "data": x[:101].tolist()}}),
            requests.post(f"{base}/v1/models/capped:predict", json={"instances": x[:101].tolist()}),
            requests.post(f"{base}/v2/models/capped/infer", json={"inputs": [{"name": "input", "shape": [101, FEATURES], "datatype": "FP32", "data": x[:101].ravel().tolist()}]}),
        ]:
            assert r.status_code == 413, r.text
            assert "more than 100 rows" in r.text and "max_rows_per_request" in r.text, r.text
        # A body over the scoring limit is refused from its declared length, before it is read.
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"POST /deployments/capped/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {64 * MIB + 1}\r\n\r\n".encode())
            answer = s.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 413"), answer
        for bad in [0, -1, "many", 100_000_001]:
            r = requests.patch(f"{base}/api/steward/v1/deployments/capped", json={"max_rows_per_request": bad})
            assert r.status_code == 400 and "max_rows_per_request" in r.text, (bad, r.text)
        r = requests.patch(f"{base}/api/steward/v1/deployments/capped", json={"max_rows_per_request": None})
        assert r.status_code == 200 and "max_rows_per_request" not in r.json()["deployment"], r.text
        assert requests.post(url, data=over, headers={"Content-Type": "text/csv"}).status_code == 200
