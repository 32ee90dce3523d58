"""The unmodified MLflow client (mlflow-skinny 3.17.2) against the real Steward server."""

import json
import math
import os
import time
import uuid

import pytest
import requests

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def error_code(exc: MlflowException) -> str:
    return exc.error_code


def test_set_experiment_creates_once_and_runs_land_in_it():
    name = unique("credit")
    exp = mlflow.set_experiment(name)
    assert exp.name == name and exp.lifecycle_stage == "active"
    assert mlflow.set_experiment(name).experiment_id == exp.experiment_id
    with mlflow.start_run() as run:
        assert run.info.experiment_id == exp.experiment_id
        assert run.info.artifact_uri.startswith(f"mlflow-artifacts:/{exp.experiment_id}/")
    assert MlflowClient().get_experiment_by_name(unique("absent")) is None


def test_params_metrics_tags_and_nested_runs():
    mlflow.set_experiment(unique("logging"))
    client = MlflowClient()
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"depth": 4, "model": "gbm"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=1_700_000_000_000 + step)
        mlflow.log_metrics({"auc": 0.81, "ks": 0.42}, step=3)
        mlflow.log_metric("weird", float("nan"))
        mlflow.set_tag("team", "risk")
        mlflow.set_tags({"stage": "dev", "owner": "alice"})
        with mlflow.start_run(run_name="child", nested=True) as child:
            mlflow.log_metric("child_metric", 2.5)
    run = client.get_run(parent.info.run_id)
    assert run.info.status == "FINISHED" and run.info.end_time is not None
    assert run.info.run_name == "parent"
    assert run.data.params == {"lr": "0.1", "depth": "4", "model": "gbm"}
    assert run.data.metrics["loss"] == pytest.approx(0.2)
    assert run.data.metrics["auc"] == pytest.approx(0.81)
    assert math.isnan(run.data.metrics["weird"])
    assert run.data.tags["team"] == "risk" and run.data.tags["owner"] == "alice"
    child_run = client.get_run(child.info.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child_run.data.metrics == {"child_metric": 2.5}

    history = client.get_metric_history(parent.info.run_id, "loss")
    assert [(m.step, m.timestamp, m.value) for m in history] == [
        (s, 1_700_000_000_000 + s, pytest.approx(1.0 / (s + 1))) for s in range(5)
    ]


def test_artifacts_log_list_and_download(tmp_path):
    mlflow.set_experiment(unique("artifacts"))
    client = MlflowClient()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.csv").write_text("x,y\n1,2\n")
    single = tmp_path / "model.bin"
    single.write_bytes(bytes(range(256)) * 100)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(single))
        mlflow.log_artifact(str(single), artifact_path="models/v1")
        mlflow.log_artifacts(str(src), artifact_path="data")
        mlflow.log_text("hello steward", "notes/readme.txt")
        mlflow.log_dict({"threshold": 0.5, "features": ["income", "debt"]}, "config.json")
    rid = run.info.run_id

    top = {f.path: f for f in client.list_artifacts(rid)}
    assert set(top) == {"config.json", "data", "model.bin", "models", "notes"}
    assert top["data"].is_dir and not top["model.bin"].is_dir
    assert top["model.bin"].file_size == 25600
    assert sorted(f.path for f in client.list_artifacts(rid, "data")) == ["data/a.txt", "data/sub"]
    assert [f.path for f in client.list_artifacts(rid, "data/sub")] == ["data/sub/b.csv"]

    out = tmp_path / "out"
    out.mkdir()
    path = client.download_artifacts(rid, "models/v1/model.bin", str(out))
    assert open(path, "rb").read() == single.read_bytes()
    d = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path="data", dst_path=str(out / "d"))
    assert open(os.path.join(d, "sub", "b.csv")).read() == "x,y\n1,2\n"
    assert mlflow.artifacts.load_text(f"runs:/{rid}/notes/readme.txt") == "hello steward"
    assert mlflow.artifacts.load_dict(f"runs:/{rid}/config.json") == {"threshold": 0.5, "features": ["income", "debt"]}


def test_search_runs_filters_orders_and_pages():
    exp = mlflow.set_experiment(unique("search"))
    client = MlflowClient()
    ids = []
    for i in range(23):
        with mlflow.start_run(run_name=f"r{i:02d}") as run:
            mlflow.log_param("model", "gbm" if i % 2 == 0 else "logit")
            mlflow.log_metric("auc", 0.5 + i / 100)
            mlflow.set_tag("cohort", "A" if i < 10 else "B")
        ids.append(run.info.run_id)
    eid = [exp.experiment_id]

    got = client.search_runs(eid, "metrics.auc > 0.69 AND params.model = 'gbm'", order_by=["metrics.auc DESC"])
    assert [r.info.run_id for r in got] == [ids[i] for i in (22, 20)]
    got = client.search_runs(eid, "tags.cohort = 'A' and attributes.run_name LIKE 'r0%'", order_by=["attributes.run_name ASC"])
    assert [r.info.run_name for r in got] == [f"r{i:02d}" for i in range(10)]
    got = client.search_runs(eid, "tags.`mlflow.runName` ILIKE 'R1%'")
    assert len(got) == 10
    got = client.search_runs(eid, f"attributes.run_id IN ('{ids[3]}', '{ids[4]}')")
    assert {r.info.run_id for r in got} == {ids[3], ids[4]}

    seen, token = [], None
    while True:
        page = client.search_runs(eid, "", order_by=["metrics.auc ASC"], max_results=5, page_token=token)
        assert len(page) <= 5
        seen += [r.info.run_id for r in page]
        token = page.token
        if not token:
            break
    assert seen == ids

    with pytest.raises(MlflowException) as err:
        client.search_runs(eid, "metrics.auc > 0.5 OR metrics.auc < 0.2")
    assert error_code(err.value) == "INVALID_PARAMETER_VALUE"


def test_delete_and_restore_runs_and_experiments():
    client = MlflowClient()
    exp_id = client.create_experiment(unique("lifecycle"))
    run = client.create_run(exp_id)
    client.delete_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([exp_id]) == []
    assert len(client.search_runs([exp_id], run_view_type=mlflow.entities.ViewType.DELETED_ONLY)) == 1
    client.restore_run(run.info.run_id)
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "deleted"
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"


def test_errors_surface_with_mlflow_codes():
    client = MlflowClient()
    name = unique("dup")
    client.create_experiment(name)
    with pytest.raises(MlflowException) as err:
        client.create_experiment(name)
    assert error_code(err.value) == "RESOURCE_ALREADY_EXISTS"

    with pytest.raises(MlflowException) as err:
        client.get_run(uuid.uuid4().hex)
    assert error_code(err.value) == "RESOURCE_DOES_NOT_EXIST"

    run = client.create_run("0")
    rid = run.info.run_id
    client.log_param(rid, "lr", "0.1")
    with pytest.raises(MlflowException) as err:
        client.log_param(rid, "lr", "0.2")
    assert error_code(err.value) == "INVALID_PARAMETER_VALUE"
    assert "already logged" in err.value.message

    # A batch that changes a param is refused whole: its metric and tag do not land.
    with pytest.raises(MlflowException) as err:
        client.log_batch(rid, metrics=[Metric("auc", 0.9, int(time.time() * 1000), 0)],
                         params=[Param("lr", "0.3")], tags=[RunTag("t", "v")])
    assert error_code(err.value) == "INVALID_PARAMETER_VALUE"
    after = client.get_run(rid)
    assert after.data.metrics == {} and "t" not in after.data.tags

    with pytest.raises(MlflowException) as err:
        client.log_param(rid, "long", "x" * 7000)
    assert error_code(err.value) == "INVALID_PARAMETER_VALUE"


def test_oversize_batch_is_refused_with_mlflow_code(server):
    # The client splits big batches itself, so send one raw, as another client might.
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request, verify_rest_response

    rid = MlflowClient().create_run("0").info.run_id
    creds = MlflowHostCreds(server["url"])
    metrics = [{"key": "m", "value": float(i), "timestamp": i, "step": i} for i in range(1001)]
    resp = http_request(creds, "/api/2.0/mlflow/runs/log-batch", "POST", json={"run_id": rid, "metrics": metrics})
    with pytest.raises(MlflowException) as err:
        verify_rest_response(resp, "/api/2.0/mlflow/runs/log-batch")
    assert error_code(err.value) == "INVALID_PARAMETER_VALUE"
    assert resp.status_code == 400
    assert MlflowClient().get_metric_history(rid, "m") == []


def test_ajax_api_and_server_endpoints(server):
    url = server["url"]
    assert requests.get(f"{url}/health").text == "OK"
    assert requests.get(f"{url}/version").text == "3.17.2"
    assert requests.get(f"{url}/api/3.0/mlflow/server-info").json()["store_type"] == "SqlStore"
    got = requests.get(f"{url}/ajax-api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "Default"})
    assert got.json()["experiment"]["experiment_id"] == "0"
