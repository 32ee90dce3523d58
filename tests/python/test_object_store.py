"""Artifacts in object storage: Steward proxies them to S3 (a local moto server)."""

import socket
import subprocess
import sys
import time
import uuid

import boto3
import pytest
import requests

import mlflow
from mlflow import MlflowClient

from conftest import start_steward, stop

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(endpoint, timeout=0.5)
            break
        except requests.ConnectionError:
            time.sleep(0.1)
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.create_bucket(Bucket="steward")
    yield endpoint, client
    proc.terminate()
    proc.wait(timeout=10)


def test_artifacts_round_trip_through_s3(s3, server, tmp_path):
    endpoint, bucket = s3
    backend = f"sqlite:///{tmp_path}/steward.db"
    proc, url = start_steward(backend, "s3://steward/artifacts", dict(S3_ENV, AWS_ENDPOINT_URL=endpoint))
    try:
        mlflow.set_tracking_uri(url)
        mlflow.set_experiment(f"s3-{uuid.uuid4().hex[:6]}")
        payload = bytes(range(256)) * 4096  # 1 MiB
        f = tmp_path / "weights.bin"
        f.write_bytes(payload)
        with mlflow.start_run() as run:
            mlflow.log_artifact(str(f), artifact_path="model")
            mlflow.log_text("hi", "notes.txt")
        client = MlflowClient(url)
        assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == ["model", "notes.txt"]
        out = client.download_artifacts(run.info.run_id, "model/weights.bin", str(tmp_path / "out"))
        assert open(out, "rb").read() == payload
        keys = [o["Key"] for o in bucket.list_objects_v2(Bucket="steward")["Contents"]]
        exp = run.info.experiment_id
        assert f"artifacts/{exp}/{run.info.run_id}/artifacts/model/weights.bin" in keys
        assert f"artifacts/{exp}/{run.info.run_id}/artifacts/notes.txt" in keys
    finally:
        stop(proc)
