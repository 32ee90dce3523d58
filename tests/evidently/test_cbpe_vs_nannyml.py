"""Label-free quality in monitors against NannyML 0.13's CBPE: a model trained and deployed by a
Steward pipeline, a monitor calibrated on a labelled reference (`steward monitor create
--label`), live windows scored through the server. Each window's estimated ROC AUC and accuracy
equal NannyML's CBPE on the same reference and the same chunks (to 1e-9), both decide the same
about calibrating, the estimate follows the accuracy the labels later show, and a floor on the
estimate raises an alert before any label arrives."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML phones home otherwise
import nannyml  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support import start_steward, steward_bin, stop  # noqa: E402

FEATURES = ["f0", "f1", "f2", "f3"]
WINDOW = 50  # requests per window
BATCH = 10  # rows per request: windows of 500 rows
ROWS = WINDOW * BATCH


def table(rng, n, spread=1.0):
    """Applicants; a narrower spread (a covariate shift) puts more of them near the decision
    boundary, where the model is right less often."""
    return pd.DataFrame(rng.normal(size=(n, 4)) * spread, columns=FEATURES)


def labels(rng, frame, sharpness):
    z = 1.2 * frame.f0 - 0.9 * frame.f1 + 0.6 * frame.f2 - 0.3 * frame.f3
    return (rng.random(len(frame)) < 1 / (1 + np.exp(-sharpness * z))).astype(int)


def score(base, frame):
    """The served champion's answers on the rows, BATCH rows per request, in order: P(1) and the
    label it gave."""
    scores, predicted = [], []
    for i in range(0, len(frame), BATCH):
        part = frame.iloc[i : i + BATCH]
        r = requests.post(f"{base}/deployments/cbpe/invocations", json={"dataframe_split": {"columns": FEATURES, "data": part.values.tolist()}})
        assert r.status_code == 200, r.text
        for p in r.json()["predictions"]:
            scores.append(p["probabilities"][1])
            predicted.append(int(p["label"]))
    return np.array(scores), np.array(predicted)


def series(base, metric, n, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = requests.get(f"{base}/api/steward/v1/deployments/cbpe/monitor/metrics", params={"metric": metric}).json()["metrics"]
        if len(got) >= n:
            return [m["value"] for m in got]
        time.sleep(0.2)
    raise AssertionError(f"only {len(got)} of {n} windows judged")


def test_estimated_quality_matches_nannyml_cbpe(tmp_path):
    rng = np.random.default_rng(16)
    # Trained where outcomes follow the features sharply, monitored where they follow them
    # loosely: the model's scores are overconfident on the reference, which calibration fixes.
    train = table(rng, 4000)
    train["y"] = labels(rng, train, 3.0)
    reference = table(rng, 3000)
    reference["y"] = labels(rng, reference, 1.0)
    live = pd.concat([table(rng, 4 * ROWS), table(rng, 4 * ROWS, spread=0.35)], ignore_index=True)
    live_y = labels(rng, live, 1.0)
    train.to_csv(tmp_path / "train.csv", index=False)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    (tmp_path / "pipeline.yaml").write_text(
        "name: cbpe\ndata: train.csv\ntrain: {label: y, model: logistic}\n"
        "steps:\n  - train: {}\n  - register: {model: cbpe}\n  - deploy: {deployment: cbpe}\n"
    )
    (tmp_path / "spec.yaml").write_text("estimated_quality: {min_accuracy: 0.7}\n")

    proc, base = start_steward(f"sqlite:///{tmp_path}/steward.db", str(tmp_path / "artifacts"))
    try:
        run = subprocess.run([steward_bin(), "pipeline", "run", str(tmp_path / "pipeline.yaml"), "--tracking-uri", base], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        # The reference as the champion scores it (what the CLI calibrates on), scored before
        # the monitor starts so that these requests are not judged.
        ref_scores, ref_predicted = score(base, reference[FEATURES])
        created = subprocess.run([steward_bin(), "monitor", "create", "cbpe", "--reference", str(tmp_path / "reference.csv"), "--label", "y",
                                  "--window-size", str(WINDOW), "--spec", str(tmp_path / "spec.yaml"), "--tracking-uri", base], capture_output=True, text=True)
        assert created.returncode == 0, created.stderr
        assert "4 features" in created.stdout, created.stdout  # the label is not a feature

        live_scores, live_predicted = score(base, live)
        estimated_auc = series(base, "estimated_roc_auc", 8)
        estimated_accuracy = series(base, "estimated_accuracy", 8)
        alerts = requests.get(f"{base}/api/steward/v1/alerts", params={"deployment": "cbpe"}).json()["alerts"]
    finally:
        stop(proc)

    cbpe = nannyml.CBPE(y_pred_proba="score", y_pred="predicted", y_true="y", problem_type="classification_binary",
                        metrics=["roc_auc", "accuracy"], chunk_size=ROWS)
    cbpe.fit(pd.DataFrame({"score": ref_scores, "predicted": ref_predicted, "y": reference["y"]}))
    result = cbpe.estimate(pd.DataFrame({"score": live_scores, "predicted": live_predicted, "y": live_y})).filter(period="analysis").to_df()
    want_auc = result[("roc_auc", "value")].tolist()
    want_accuracy = result[("accuracy", "value")].tolist()
    realised_accuracy = result[("accuracy", "realized")].tolist()

    assert cbpe.needs_calibration and "calibrated" in created.stdout and "needing no calibration" not in created.stdout, created.stdout
    assert len(want_auc) == 8
    np.testing.assert_allclose(estimated_auc, want_auc, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(estimated_accuracy, want_accuracy, rtol=1e-9, atol=1e-12)
    print("\nwindow  estimated AUC  NannyML AUC  estimated acc  NannyML acc  realised acc")
    for w in range(8):
        print(f"{w:6d}  {estimated_auc[w]:.10f}  {want_auc[w]:.10f}  {estimated_accuracy[w]:.10f}  {want_accuracy[w]:.10f}  {realised_accuracy[w]:.4f}")
    print(f"largest difference from NannyML: ROC AUC {np.max(np.abs(np.subtract(estimated_auc, want_auc))):.1e}, accuracy {np.max(np.abs(np.subtract(estimated_accuracy, want_accuracy))):.1e}")
    # The estimate follows what the labels later show (sampling error of 500 rows: about 0.02).
    assert np.mean(np.abs(np.array(estimated_accuracy) - realised_accuracy)) < 0.04
    # The shifted windows are estimated worse, and the floor raises one alert, still firing.
    assert max(estimated_accuracy[4:]) < min(estimated_accuracy[:4]), estimated_accuracy
    assert [w for w in range(8) if estimated_accuracy[w] < 0.7] == [4, 5, 6, 7], estimated_accuracy
    (fired,) = [a for a in alerts if a["kind"] == "estimated_quality"]
    assert fired["status"] == "firing" and "no labels yet" in fired["message"], fired
