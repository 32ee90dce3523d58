"""Built-in training against real oracles: `steward data synth credit` is deterministic per seed;
a model trained before an injected concept drift loses ROC AUC after it (scikit-learn scores
it); the ONNX files `steward train` writes give onnxruntime's answers; the holdout metrics it
records are scikit-learn's; on the UCI German Credit data the tree model's holdout ROC AUC is at
least 0.75."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support import steward_bin  # noqa: E402

GERMAN = REPO / "examples" / "credit" / "germancredit.csv"
SYNTH_EXCLUDE = "application_id,application_time,age_band"


def run(*args):
    proc = subprocess.run([steward_bin(), *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def scores(model, frame, tmp_path):
    frame.to_csv(tmp_path / "rows.csv", index=False)
    run("predict", "--model", model, "--input", tmp_path / "rows.csv", "--output", tmp_path / "scored.csv")
    out = pd.read_csv(tmp_path / "scored.csv")
    return out["label"].to_numpy(), out["probabilities_1"].to_numpy()


def test_synthetic_data_is_deterministic_per_seed(tmp_path):
    for name, seed in [("a", 7), ("b", 7), ("c", 8)]:
        run("data", "synth", "credit", "--rows", 3000, "--seed", seed, "--out", tmp_path / f"{name}.csv")
    a, b, c = ((tmp_path / f"{n}.csv").read_bytes() for n in "abc")
    assert a == b and a != c
    df = pd.read_csv(tmp_path / "a.csv")
    assert len(df) == 3000 and set(df["default"].unique()) == {0, 1}
    assert set(df["age_band"]) <= {"18-25", "26-35", "36-50", "51-65", "66+"}


def test_concept_drift_costs_a_trained_model_auc(tmp_path):
    run("data", "synth", "credit", "--rows", 30000, "--seed", 11, "--concept-drift-at", 20000, "--out", tmp_path / "all.csv")
    df = pd.read_csv(tmp_path / "all.csv")
    df.iloc[:20000].to_csv(tmp_path / "before.csv", index=False)
    run("train", "--data", tmp_path / "before.csv", "--label", "default", "--exclude", SYNTH_EXCLUDE, "--holdout", 0.25, "--out", tmp_path / "m")
    model = tmp_path / "m" / "model.onnx"
    features = df.drop(columns=["application_id", "application_time", "age_band", "default"])
    _, before = scores(model, features.iloc[15000:20000], tmp_path)  # held out, before the drift
    _, after = scores(model, features.iloc[20000:], tmp_path)
    auc_before = roc_auc_score(df["default"].iloc[15000:20000], before)
    auc_after = roc_auc_score(df["default"].iloc[20000:], after)
    assert auc_before > 0.75 and auc_after < auc_before - 0.05, (auc_before, auc_after)


@pytest.mark.parametrize("kind", ["gbt", "logistic"])
def test_trained_models_answer_as_onnxruntime_and_record_sklearn_metrics(tmp_path, kind):
    run("train", "--data", GERMAN, "--label", "creditability", "--positive", "bad", "--model", kind, "--out", tmp_path / "m")
    model = tmp_path / "m" / "model.onnx"
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    df = pd.read_csv(GERMAN)
    features = df.drop(columns=["creditability"])
    labels, probs = scores(model, features, tmp_path)

    session = ort.InferenceSession(str(model))
    feeds = {}
    for i in session.get_inputs():
        col = features[i.name]
        feeds[i.name] = (np.array(col.astype(str).tolist(), dtype=object) if i.type == "tensor(string)" else col.to_numpy(dtype=np.float32)).reshape(-1, 1)
    want_labels, want_probs = session.run(None, feeds)
    assert np.abs(probs - want_probs[:, 1]).max() < 1e-5
    assert (labels == want_labels).all()

    holdout = slice(700, 1000)  # the last 30% of rows
    truth = (df["creditability"].iloc[holdout] == "bad").astype(int)
    auc = roc_auc_score(truth, probs[holdout])
    # The recorded metric is computed in f64, the served scores are f32: ties may differ.
    assert abs(metrics["roc_auc"] - auc) < 2e-3, (metrics["roc_auc"], auc)
    assert abs(metrics["gini"] - (2 * metrics["roc_auc"] - 1)) < 1e-12
    assert metrics["rows_train"] == 700 and metrics["rows_holdout"] == 300
    assert {f["feature"] for f in metrics["feature_importance"]} == set(features.columns)
    assert sum(b["rows"] for b in metrics["calibration"]) == 300
    if kind == "gbt":
        assert metrics["roc_auc"] >= 0.75


def test_training_refuses_bad_input_naming_it(tmp_path):
    proc = subprocess.run([steward_bin(), "train", "--data", str(GERMAN), "--label", "nope", "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert proc.returncode != 0 and "no label column 'nope'" in proc.stderr
    proc = subprocess.run([steward_bin(), "train", "--data", str(GERMAN), "--label", "creditability", "--positive", "bad", "--holdout", "1.5", "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert proc.returncode != 0 and "holdout must be within" in proc.stderr
    assert not (tmp_path / "m").exists()
