"""Runtime conformance matrix: Steward's outputs equal onnxruntime's on every model of the
matrix (scikit-learn, XGBoost and LightGBM exported with default options), on 3,000 rows
including missing values. Probabilities and scores agree within 1e-5 (relative to the value's
magnitude when it exceeds 1); labels are identical."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from conftest import steward_bin
from make_models import CASE_NAMES


def output_columns(name, shape):
    if len(shape) == 1 or shape[1] == 1:
        return [name]
    return [f"{name}_{j}" for j in range(shape[1])]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_outputs_equal_onnxruntime(models_dir, case, tmp_path):
    out = tmp_path / "scored.csv"
    subprocess.run(
        [steward_bin(), "predict", "--model", str(models_dir / f"{case}.onnx"),
         "--input", str(models_dir / f"{case}.csv"), "--output", str(out)],
        check=True, capture_output=True, text=True,
    )
    got = pd.read_csv(out)
    expected = json.loads((models_dir / f"{case}.expected.json").read_text())
    assert len(got) == 3000
    for name, e in expected.items():
        want = np.array(e["data"]).reshape(e["shape"])
        have = got[output_columns(name, e["shape"])].to_numpy().reshape(want.shape)
        if e["dtype"].startswith("int"):
            mismatched = np.flatnonzero(have != want)
            assert mismatched.size == 0, f"{name}: {mismatched.size} labels differ, first rows {mismatched[:5]}"
        else:
            assert np.array_equal(np.isnan(have), np.isnan(want)), f"{name}: NaN where onnxruntime has none (or the reverse)"
            same = (have == want) | np.isnan(want)  # equal infinities (PROBIT of 0 and 1) included
            with np.errstate(invalid="ignore"):
                err = np.where(same, 0.0, np.abs(have - want) / np.maximum(1.0, np.abs(want)))
            assert err.max() <= 1e-5, f"{name}: max error {err.max():.3g} at flat index {err.argmax()}"


def test_nan_is_refused_where_the_model_cannot_take_it(models_dir, tmp_path):
    rows = pd.read_csv(models_dir / "logreg_binary.csv").head(5)
    rows.iloc[2, 3] = np.nan
    path = tmp_path / "rows.csv"
    rows.to_csv(path, index=False)
    proc = subprocess.run(
        [steward_bin(), "predict", "--model", str(models_dir / "logreg_binary.onnx"),
         "--input", str(path), "--output", str(tmp_path / "out.csv")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 1
    assert "input 'input' contains NaN" in proc.stderr


@pytest.mark.parametrize("case", ["pipeline_impute_scale_onehot", "xgb_classifier_multiclass"])
def test_parquet_in_and_out(models_dir, case, tmp_path):
    """The batch scorer reads and writes Parquet (typed columns, nulls as missing values)."""
    rows = pd.read_csv(models_dir / f"{case}.csv")
    rows.to_parquet(tmp_path / "rows.parquet")
    out = tmp_path / "scored.parquet"
    subprocess.run(
        [steward_bin(), "predict", "--model", str(models_dir / f"{case}.onnx"),
         "--input", str(tmp_path / "rows.parquet"), "--output", str(out)],
        check=True, capture_output=True, text=True,
    )
    got = pd.read_parquet(out)
    expected = json.loads((models_dir / f"{case}.expected.json").read_text())
    for name, e in expected.items():
        want = np.array(e["data"]).reshape(e["shape"])
        have = got[output_columns(name, e["shape"])].to_numpy().reshape(want.shape)
        if e["dtype"].startswith("int"):
            assert got[output_columns(name, e["shape"])[0]].dtype == np.int64
            assert (have == want).all()
        else:
            assert np.abs(have - want).max() <= 1e-5


def test_fingerprint_is_the_same_for_csv_and_parquet(tmp_path):
    """`steward data fingerprint` hashes content, not the file format."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"income": rng.normal(5e4, 1e4, 200), "age": rng.integers(18, 90, 200),
                       "region": rng.choice(["north", "south"], 200), "flag": rng.random(200) < 0.5})
    df.loc[::17, "income"] = np.nan
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "a.parquet")
    changed = df.copy()
    changed.loc[5, "age"] += 1
    changed.to_parquet(tmp_path / "b.parquet")

    def fp(path):
        return subprocess.run([steward_bin(), "data", "fingerprint", str(path)], check=True, capture_output=True, text=True).stdout.strip()

    a = fp(tmp_path / "a.csv")
    assert a.startswith("sha256:") and len(a) == 7 + 64
    assert fp(tmp_path / "a.parquet") == a
    assert fp(tmp_path / "b.parquet") != a


def test_validation_suite_reports_each_expectation(tmp_path):
    """`steward data validate` checks a YAML suite and names counts and example rows."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"application_id": np.arange(300), "income": rng.normal(5e4, 1e4, 300),
                       "region": rng.choice(["north", "south", "east"], 300)})
    df.loc[[3, 7], "income"] = np.nan
    df.to_parquet(tmp_path / "good.parquet")
    bad = df.copy()
    bad.loc[10, "application_id"] = 5            # duplicate id
    bad.loc[[20, 21, 22], "income"] = -1.0        # out of range
    bad.loc[40, "region"] = "atlantis"            # not allowed
    bad.to_csv(tmp_path / "bad.csv", index=False)
    fingerprint = subprocess.run([steward_bin(), "data", "fingerprint", str(tmp_path / "good.parquet")], check=True, capture_output=True, text=True).stdout.strip()
    (tmp_path / "suite.yaml").write_text(f"""
row_count: {{min: 100, max: 10000}}
fingerprint: {fingerprint}
columns:
  application_id: {{unique: true, max_null_share: 0}}
  income: {{type: numeric, max_null_share: 0.05, min: 0}}
  region: {{type: categorical, allowed: [north, south, east, west]}}
  tenure: {{type: numeric}}
""")

    def validate(path):
        proc = subprocess.run([steward_bin(), "data", "validate", "--suite", str(tmp_path / "suite.yaml"), str(path)], capture_output=True, text=True)
        return proc.returncode, json.loads(proc.stdout)

    code, good = validate(tmp_path / "good.parquet")
    failed = {(r["expectation"], r.get("column")) for r in good["results"] if not r["success"]}
    assert failed == {("column_present", "tenure")} and code == 1
    code, report = validate(tmp_path / "bad.csv")
    assert code == 1
    by = {(r["expectation"], r.get("column")): r for r in report["results"]}
    assert by[("values_unique", "application_id")]["unexpected_count"] == 1
    assert by[("values_unique", "application_id")]["examples"] == [{"row": 10, "value": "5"}]
    assert by[("values_between", "income")]["unexpected_count"] == 3
    assert [e["row"] for e in by[("values_between", "income")]["examples"]] == [20, 21, 22]
    assert by[("values_in_set", "region")]["examples"] == [{"row": 40, "value": "atlantis"}]
    assert by[("null_share_at_most", "income")]["success"] and abs(by[("null_share_at_most", "income")]["observed"] - 2 / 300) < 1e-12
    assert not by[("fingerprint_matches", None)]["success"] and by[("row_count_between", None)]["success"]
    (tmp_path / "typo.yaml").write_text("columns:\n  income: {maxx: 3}\n")
    proc = subprocess.run([steward_bin(), "data", "validate", "--suite", str(tmp_path / "typo.yaml"), str(tmp_path / "bad.csv")], capture_output=True, text=True)
    assert proc.returncode == 1 and "maxx" in proc.stderr


def test_inferred_suite_accepts_its_table_and_catches_changes(tmp_path):
    """`steward data suite` infers the schema (types, null shares, ranges, allowed values,
    uniqueness); the table it came from passes, a changed one fails where it changed."""
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"application_id": np.arange(400), "income": rng.lognormal(10, 0.5, 400),
                       "region": rng.choice(["north", "south", "east"], 400), "term": rng.choice([12, 24, 36], 400)})
    df.loc[[5, 9], "income"] = np.nan
    df.to_parquet(tmp_path / "train.parquet")
    suite = subprocess.run([steward_bin(), "data", "suite", str(tmp_path / "train.parquet")], check=True, capture_output=True, text=True).stdout
    (tmp_path / "suite.yaml").write_text(suite)

    def validate(path):
        proc = subprocess.run([steward_bin(), "data", "validate", "--suite", str(tmp_path / "suite.yaml"), str(path)], capture_output=True, text=True)
        return proc.returncode, {(r["expectation"], r.get("column")): r for r in json.loads(proc.stdout)["results"]}

    code, same = validate(tmp_path / "train.parquet")
    assert code == 0, [k for k, r in same.items() if not r["success"]]
    assert ("values_unique", "application_id") in same and ("values_in_set", "region") in same and ("values_in_set", "term") in same
    assert same[("values_between", "income")]["observed"] == {"min": float(df.income.min()), "max": float(df.income.max())}
    df.to_csv(tmp_path / "train.csv", index=False)
    assert validate(tmp_path / "train.csv")[0] == 0  # the same table as CSV
    changed = df.copy()
    changed.loc[0, "income"] = df.income.max() * 2
    changed.loc[[1, 2, 3], "income"] = np.nan
    changed.loc[4, "region"] = "west"
    changed.to_csv(tmp_path / "changed.csv", index=False)
    code, got = validate(tmp_path / "changed.csv")
    failed = {k for k, r in got.items() if not r["success"]}
    assert code == 1 and failed == {("values_between", "income"), ("null_share_at_most", "income"), ("values_in_set", "region")}, failed
