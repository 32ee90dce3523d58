"""Pipelines acceptance: `steward pipeline run examples/credit/pipeline.yaml` registers a model
version whose own run (as the mlflow client sees it) records the input dataset with the
fingerprint as digest and the holdout ROC AUC (>= 0.75 on German Credit); the served model
answers, with reason codes on request. A gate failure, a validation failure and a failing external command each stop the
pipeline with the reason recorded, and register no version."""

import subprocess
from pathlib import Path

import mlflow
import requests
from conftest import REPO, own_server, steward_bin
from mlflow.tracking import MlflowClient

EXAMPLE = REPO / "examples" / "credit"


def pipeline(path, base):
    return subprocess.run([steward_bin(), "pipeline", "run", str(path), "--tracking-uri", base], capture_output=True, text=True)


def test_example_pipeline_registers_a_traceable_version(server):
    base = server["url"]
    proc = pipeline(EXAMPLE / "pipeline.yaml", base)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "registered german-credit version" in proc.stdout and "deployed models:/german-credit/" in proc.stdout
    fingerprint = subprocess.run([steward_bin(), "data", "fingerprint", str(EXAMPLE / "germancredit.csv")], check=True, capture_output=True, text=True).stdout.strip()

    client = MlflowClient(base)
    version = client.get_model_version_by_alias("german-credit", "challenger")
    assert version.tags["steward.dataset.fingerprint"] == fingerprint
    run = client.get_run(version.run_id)
    assert run.data.metrics["roc_auc"] >= 0.75, run.data.metrics
    assert run.data.params["model"] == "gbt" and run.data.tags["steward.step"] == "train"
    (dataset,) = [d.dataset for d in run.inputs.dataset_inputs]
    assert dataset.digest == fingerprint.removeprefix("sha256:")[:32] and fingerprint in dataset.profile
    artifacts = [f.path for f in client.list_artifacts(version.run_id, "model")]
    assert artifacts == ["model/model.onnx"]
    assert {f.path for f in client.list_artifacts(version.run_id)} >= {"model", "training.json", "reference_profile.json"}
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED" and parent.data.tags["steward.pipeline"] == "german-credit"

    # The deployed version answers one application.
    row = {"status_of_existing_checking_account": "... < 0 DM", "duration_in_month": 24.0, "credit_history": "existing credits paid back duly till now",
           "purpose": "car (new)", "credit_amount": 4000.0, "savings_account_and_bonds": "... < 100 DM", "present_employment_since": "1 <= ... < 4 years",
           "installment_rate_in_percentage_of_disposable_income": 3.0, "personal_status_and_sex": "male : single", "other_debtors_or_guarantors": "none",
           "present_residence_since": 2.0, "property": "car or other, not in attribute 6", "age_in_years": 30.0, "other_installment_plans": "none",
           "housing": "own", "number_of_existing_credits_at_this_bank": 1.0, "job": "skilled employee / official",
           "number_of_people_being_liable_to_provide_maintenance_for": 1.0, "telephone": "none", "foreign_worker": "yes"}
    r = requests.post(f"{base}/deployments/german-credit/invocations", json={"dataframe_records": [row]})
    assert r.status_code == 200, r.text
    p = r.json()["predictions"][0]
    assert 0.0 < p["probabilities"][1] < 1.0 and p["label"] in (0, 1)
    assert "reason_codes" not in r.json()
    # Reason codes on request: the features pushing towards 'bad', largest first (TreeSHAP).
    r = requests.post(f"{base}/deployments/german-credit/invocations", json={"dataframe_records": [row], "params": {"reason_codes": 4}})
    assert r.status_code == 200, r.text
    (codes,) = r.json()["reason_codes"]
    assert 1 <= len(codes) <= 4 and all(c["feature"] in row and c["contribution"] > 0 for c in codes)
    assert [c["contribution"] for c in codes] == sorted((c["contribution"] for c in codes), reverse=True)
    types = {i["name"]: i["datatype"] for i in requests.get(f"{base}/v2/models/german-credit").json()["inputs"]}
    as_text = lambda v: v if isinstance(v, str) else f"{v:g}"  # integers with few values are categories
    oip = {"inputs": [{"name": k, "shape": [1, 1], "datatype": types[k], "data": [as_text(v) if types[k] == "BYTES" else v]} for k, v in row.items()],
           "parameters": {"reason_codes": True}}
    r = requests.post(f"{base}/v2/models/german-credit/infer", json=oip)
    assert r.status_code == 200, r.text
    assert [c["feature"] for c in r.json()["parameters"]["reason_codes"][0]] == [c["feature"] for c in codes]
    r = requests.post(f"{base}/deployments/german-credit/invocations", json={"dataframe_records": [row], "params": {"reason_codes": "many"}})
    assert r.status_code == 400 and "reason_codes" in r.json()["error"]

    # Lineage both ways: dataset version -> runs -> model versions -> deployments, and back.
    assert "dataset germancredit version 1" in proc.stdout
    down = requests.get(f"{base}/api/steward/v1/datasets/germancredit/versions/1/lineage").json()
    assert down["dataset_version"]["fingerprint"] == fingerprint
    assert version.run_id in down["runs"]
    (mv,) = [m for m in down["model_versions"] if m["name"] == "german-credit" and m["version"] == version.version]
    assert {"deployment": "german-credit", "role": "champion"} in mv["deployments"]
    up = requests.get(f"{base}/api/steward/v1/registry/models/german-credit/versions/{version.version}/lineage").json()
    assert up["model_version"]["run_id"] == version.run_id
    assert [(d["name"], d["version"], d["fingerprint"]) for d in up["dataset_versions"]] == [("germancredit", 1, fingerprint)]
    assert up["deployments"] == [{"deployment": "german-credit", "role": "champion"}]

    # Run again: the data is the version it already was, the train step is reused.
    again = pipeline(EXAMPLE / "pipeline.yaml", base)
    assert again.returncode == 0, again.stderr
    assert "dataset germancredit version 1 (already registered)" in again.stdout
    assert f"reused run {version.run_id}" in again.stdout


def test_dataset_registry_is_content_addressed(server, tmp_path):
    base = server["url"]
    df = __import__("pandas").read_csv(EXAMPLE / "germancredit.csv")
    df.head(300).to_csv(tmp_path / "a.csv", index=False)
    df.head(300).to_parquet(tmp_path / "a.parquet")
    df.head(400).to_csv(tmp_path / "b.csv", index=False)
    reg = lambda f: subprocess.run([steward_bin(), "data", "register", str(f), "--name", "applications", "--tracking-uri", base], capture_output=True, text=True)
    first = reg(tmp_path / "a.csv")
    assert first.returncode == 0 and "registered dataset applications version 1" in first.stdout, first.stderr
    same = reg(tmp_path / "a.parquet")  # the same table as Parquet: the same fingerprint
    assert same.returncode == 0 and "already registered: dataset applications version 1" in same.stdout, same.stdout
    assert "version 2" in reg(tmp_path / "b.csv").stdout
    versions = requests.get(f"{base}/api/steward/v1/datasets/applications").json()["versions"]
    assert [(v["version"], v["rows"], v["format"]) for v in versions] == [(1, 300, "csv"), (2, 400, "csv")]
    stored = requests.get(f"{base}/api/2.0/mlflow-artifacts/artifacts/{versions[0]['artifact_uri'].removeprefix('mlflow-artifacts:/')}")
    assert stored.status_code == 200 and stored.content == (tmp_path / "a.csv").read_bytes()
    bad = requests.post(f"{base}/api/steward/v1/datasets", json={"name": "x", "fingerprint": "md5:1", "artifact_uri": "a", "format": "csv", "rows": 1})
    assert bad.status_code == 400 and "fingerprint" in bad.json()["message"]
    assert requests.get(f"{base}/api/steward/v1/datasets/nope").status_code == 404


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(body.replace("DATA", str(EXAMPLE / "germancredit.csv")))
    return path


def test_failures_stop_the_pipeline_with_a_reason_and_no_version(server, tmp_path):
    base = server["url"]
    mlflow.set_tracking_uri(base)
    client = MlflowClient(base)
    train = "train: {label: creditability, positive: bad, trees: 40}\n"
    register = "  - register: {model: failing-credit}\n"
    cases = [
        ("gate", "steps:\n  - train: {}\n  - evaluate: {}\n  - gate: {min_roc_auc: 0.99}\n" + register, "gate failed: roc_auc"),
        ("validation", "steps:\n  - validate: {suite: suite.yaml}\n  - train: {}\n" + register, "validation failed: 1 of 1 expectations: row_count_between"),
        ("command", "steps:\n  - train: {command: \"echo broken >&2; exit 3\"}\n" + register, "external training command failed"),
    ]
    (tmp_path / "suite.yaml").write_text("row_count: {min: 5000}\n")
    for name, steps, reason in cases:
        path = write(tmp_path, f"{name}.yaml", f"name: failing-{name}\ndata: DATA\n{train}{steps}")
        proc = pipeline(path, base)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert reason in proc.stderr, proc.stderr
        runs = client.search_runs([client.get_experiment_by_name(f"failing-{name}").experiment_id], filter_string="tags.`steward.pipeline` = 'failing-" + name + "'")
        parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parent) == 1 and parent[0].info.status == "FAILED" and reason in parent[0].data.tags["steward.failure"]
        failed_steps = [r for r in runs if r.info.status == "FAILED" and "mlflow.parentRunId" in r.data.tags]
        assert len(failed_steps) == 1 and reason in failed_steps[0].data.tags["steward.failure"]
    assert client.search_model_versions("name = 'failing-credit'") == []
    bad = write(tmp_path, "typo.yaml", f"name: x\ndata: DATA\n{train}steps:\n  - trian: {{}}\n")
    proc = pipeline(bad, base)
    assert proc.returncode != 0 and "trian" in proc.stderr


def test_scheduled_pipeline_runs_inside_the_server(tmp_path):
    import time

    path = write(tmp_path, "nightly.yaml", "name: scheduled-credit\ndata: DATA\ntrain: {label: creditability, positive: bad, trees: 20}\n"
                                           "steps:\n  - train: {}\n  - evaluate: {}\n  - register: {model: scheduled-credit}\n")
    schedule = "*/2 * * * * *"  # every two seconds (seconds first)
    with own_server(tmp_path, "--schedule", f"{schedule}={path}") as base:
        client = MlflowClient(base)
        deadline = time.time() + 30
        versions = []
        while time.time() < deadline and not versions:
            try:
                versions = client.search_model_versions("name = 'scheduled-credit'")
            except Exception:
                versions = []
            time.sleep(0.5)
        assert versions, "no scheduled run registered a version"
        run = client.get_run(versions[0].run_id)
        parent = client.get_run(run.data.tags["mlflow.parentRunId"])
        assert parent.data.tags["steward.trigger"] == f"schedule {schedule}"
    bad = subprocess.run([steward_bin(), "server", "--port", "0", "--schedule", f"61 * * * *={path}"], capture_output=True, text=True, timeout=20)
    assert bad.returncode == 2 and "minute" in bad.stderr
