"""Helpers for `cargo xtask bench serve`.

  python serve_models.py build OUT      trains the benchmark model (scikit-learn
      GradientBoosting, 100 trees, 8 features), saves it as an MLflow sklearn model (OUT/mlflow-model)
      and as ONNX (OUT/model.onnx), writes sample rows (OUT/rows.json), and times onnxruntime's
      in-process one-row prediction; prints that timing as JSON.
  python serve_models.py register URL OUT   logs OUT/model.onnx to a tracking server with the
      mlflow client, registers it as 'bench' and points the alias 'champion' at it.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

ROWS = 1000
TIMED_CALLS = 20000


def build(out: Path):
    import mlflow.sklearn
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = make_classification(n_samples=5000, n_features=8, n_informative=5, random_state=0)
    x = x.astype(np.float32)
    model = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0).fit(x, y)
    out.mkdir(parents=True, exist_ok=True)
    mlflow.sklearn.save_model(model, str(out / "mlflow-model"), skops_trusted_types=["sklearn.tree._tree.Tree"])
    onx = to_onnx(model, initial_types=[("input", FloatTensorType([None, 8]))])
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    rows = x[:ROWS]
    (out / "rows.json").write_text(json.dumps({"columns": [f"f{i}" for i in range(8)], "rows": rows.tolist(),
                                               "labels": model.predict(rows).tolist()}))

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out / "model.onnx"), options, providers=["CPUExecutionProvider"])
    one = rows[:1]
    for _ in range(1000):
        session.run(None, {"input": one})
    times = []
    for i in range(TIMED_CALLS):
        row = rows[i % ROWS : i % ROWS + 1]
        t = time.perf_counter_ns()
        session.run(None, {"input": row})
        times.append(time.perf_counter_ns() - t)
    times = np.array(times) / 1000.0
    print(json.dumps({"p50_us": float(np.percentile(times, 50)), "p99_us": float(np.percentile(times, 99)),
                      "mean_us": float(times.mean()), "calls": TIMED_CALLS}))


def register(url: str, out: Path):
    import mlflow
    import onnx

    mlflow.set_tracking_uri(url)
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onnx.load(str(out / "model.onnx")), name="model", registered_model_name="bench")
    mlflow.MlflowClient().set_registered_model_alias("bench", "champion", info.registered_model_version)


if __name__ == "__main__":
    if sys.argv[1] == "build":
        build(Path(sys.argv[2]))
    else:
        register(sys.argv[2], Path(sys.argv[3]))
