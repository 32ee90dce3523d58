"""The model registry through the unmodified MLflow client: log_model with registration,
aliases, loading by alias, search, stages, tags, rename and delete."""

import uuid

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def trained():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] - X[:, 3] > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def test_log_register_alias_and_load(trained):
    model, X = trained
    name = unique("credit")
    mlflow.set_experiment(unique("registry"))
    client = MlflowClient()
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    assert str(info.registered_model_version) == "1"
    mv = client.get_model_version(name, "1")
    assert mv.run_id == run.info.run_id and mv.current_stage == "None" and mv.status == "READY"
    assert mv.source == f"models:/{info.model_id}"
    assert client.get_run(run.info.run_id).outputs.model_outputs[0].model_id == info.model_id

    client.set_registered_model_alias(name, "champion", 1)
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_registered_model(name).aliases == {"champion": "1"}

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(mlflow.sklearn.load_model(f"models:/{name}/1").predict_proba(X), model.predict_proba(X))

    # A second registration is version 2; moving the alias is recorded in the history.
    with mlflow.start_run():
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client.set_registered_model_alias(name, "champion", 2)
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    client.delete_registered_model_alias(name, "champion")
    with pytest.raises(MlflowException) as err:
        client.get_model_version_by_alias(name, "champion")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_search_stages_tags_rename_and_delete(trained, server):
    import requests

    model, _ = trained
    name = unique("fraud")
    mlflow.set_experiment(unique("registry"))
    client = MlflowClient()
    client.create_registered_model(name, tags={"team": "risk"}, description="fraud scores")
    for _ in range(3):
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name=name)

    found = client.search_registered_models(filter_string=f"name LIKE '{name[:8]}%'")
    assert [m.name for m in found] == [name]
    assert found[0].tags == {"team": "risk"} and found[0].description == "fraud scores"
    versions = client.search_model_versions(f"name='{name}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]

    client.transition_model_version_stage(name, "1", "Production")
    mv = client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    assert mv.current_stage == "Production"
    assert client.get_model_version(name, "1").current_stage == "Archived"
    latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
    assert latest == {"Archived": "1", "Production": "2", "None": "3"}
    with pytest.raises(MlflowException) as err:
        client.transition_model_version_stage(name, "3", "Prod")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"

    client.set_registered_model_tag(name, "tier", "1")
    client.set_model_version_tag(name, "3", "validated", "no")
    assert client.get_model_version(name, "3").tags == {"validated": "no"}
    client.delete_model_version_tag(name, "3", "validated")
    client.update_model_version(name, "3", description="candidate")
    assert client.get_model_version(name, "3").description == "candidate"
    assert client.get_model_version_download_uri(name, "3").startswith("mlflow-artifacts:/")

    new_name = name + "-renamed"
    client.rename_registered_model(name, new_name)
    assert client.get_model_version(new_name, "2").current_stage == "Production"
    client.delete_model_version(new_name, "3")
    with pytest.raises(MlflowException) as err:
        client.get_model_version(new_name, "3")
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    history = requests.get(f"{server['url']}/api/steward/v1/registry/models/{new_name}/history").json()["events"]
    stages = [(e["label"], e["version"]) for e in history if e["kind"] == "stage"]
    assert ("Production", "1") in stages and ("Archived", "1") in stages and ("Production", "2") in stages

    client.delete_registered_model(new_name)
    with pytest.raises(MlflowException) as err:
        client.get_registered_model(new_name)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as err:
        client.create_registered_model(unique("x") + "/bad")
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_alias_history_answers_which_version_served_when(trained, server):
    import time

    import requests

    model, _ = trained
    name = unique("history")
    mlflow.set_experiment(unique("registry"))
    client = MlflowClient()
    for _ in range(2):
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client.set_registered_model_alias(name, "staging-live", 1)
    time.sleep(0.05)
    t1 = int(time.time() * 1000)
    time.sleep(0.05)
    client.set_registered_model_alias(name, "staging-live", 2)
    base = f"{server['url']}/api/steward/v1/registry/models/{name}/aliases/staging-live"
    assert requests.get(base, params={"at": t1}).json()["version"] == "1"
    assert requests.get(base).json()["version"] == "2"
    assert requests.get(base, params={"at": 0}).json()["version"] is None
