"""`steward report drift` against Evidently's data drift preset on the same data: the same
columns tested, the same default test per column, the same scores (to 1e-9 relative), the
same drift flags and the same dataset drift. The non-default tests (PSI, KL, Hellinger) are
compared with Evidently's stattest functions."""

import json
import os
import sys
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evidently import Report
from evidently.presets import DataDriftPreset

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from support import steward_bin  # noqa: E402
NAMES = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Jensen-Shannon distance": "jensenshannon",
    "Wasserstein distance (normed)": "wasserstein",
}




def frame(rng, n, shift):
    income = rng.lognormal(10 + 0.3 * shift, 0.5, n)
    income[rng.random(n) < 0.05] = np.nan  # missing values
    return pd.DataFrame({
        "income": income,                                                       # float
        "utilisation": np.round(rng.beta(2, 5 - 2 * shift, n), 2),              # float with ties
        "tenure_months": rng.integers(0, 240 + int(60 * shift), n),             # int, many values
        "delinquencies": rng.integers(0, 4, n),                                 # int, <= 10 values
        "region": rng.choice(["north", "south", "east", "west"], n, p=[0.4 - 0.2 * shift, 0.3, 0.2, 0.1 + 0.2 * shift]),
        "has_mortgage": rng.choice(["yes", "no"], n, p=[0.5 + 0.3 * shift, 0.5 - 0.3 * shift]),
        "score_band": rng.choice([1.0, 2.0, 3.0], n),                           # float, 3 values
    })


def evidently_drift(reference, current):
    snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
    d = snapshot.dict()
    status = {t["metric_config"]["metric_id"]: t["status"] for t in d["tests"]}
    columns, summary = {}, None
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"] == "evidently:metric_v2:ValueDrift":
            columns[cfg["column"]] = (NAMES[cfg["method"]], m["value"], cfg["threshold"], status[m["id"]] == "FAIL")
        elif cfg["type"] == "evidently:metric_v2:DriftedColumnsCount":
            summary = (m["value"]["count"], m["value"]["share"], m["value"]["share"] >= cfg["drift_share"])
    return columns, summary


def steward_drift(tmp_path, reference, current, *extra):
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    out = tmp_path / "drift.json"
    proc = subprocess.run([steward_bin(), "report", "drift", "--reference", str(tmp_path / "reference.csv"),
                           "--current", str(tmp_path / "current.csv"), "--json", str(out),
                           "--html", str(tmp_path / "drift.html"), *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("n_ref,n_cur,shift", [(200, 150, 0.0), (200, 150, 0.8), (1000, 700, 0.3), (2000, 1500, 0.0), (2000, 1500, 0.8), (5000, 800, 0.4)])
def test_default_drift_report_matches_evidently(tmp_path, n_ref, n_cur, shift):
    rng = np.random.default_rng(n_ref + n_cur)
    reference, current = frame(rng, n_ref, 0.0), frame(rng, n_cur, shift)
    want, (count, share, dataset_drift) = evidently_drift(reference, current)
    got = steward_drift(tmp_path, reference, current)
    by_name = {c["name"]: c for c in got["columns"]}
    assert set(by_name) == set(want)
    for name, (test, score, threshold, drift) in want.items():
        c = by_name[name]
        assert c["stattest"] == test, (name, c, test)
        mine = c["p_value"] if c["p_value"] is not None else c["statistic"]
        assert abs(mine - score) <= 1e-9 * max(1e-300, abs(score)) or abs(mine - score) < 1e-300, (name, mine, score)
        assert c["threshold"] == threshold
        assert c["drift"] == drift, (name, c, score)
    assert got["number_of_drifted_columns"] == count
    assert abs(got["share_of_drifted_columns"] - share) < 1e-12
    assert got["dataset_drift"] == dataset_drift
    html = (tmp_path / "drift.html").read_text()
    assert html.count("<svg") == len(want) and "http" not in html  # self-contained


@pytest.mark.parametrize("stattest", ["psi", "kl_div", "hellinger", "jensenshannon", "wasserstein", "ks", "chisquare"])
def test_other_stattests_match_evidently(tmp_path, stattest):
    from evidently.legacy.calculations.stattests import registry
    from evidently.legacy.core import ColumnType

    rng = np.random.default_rng(11)
    reference, current = frame(rng, 3000, 0.0), frame(rng, 2000, 0.5)
    got = steward_drift(tmp_path, reference, current, "--stattest", stattest)
    tested = 0
    for c in got["columns"]:
        kind = ColumnType.Numerical if c["type"] == "numerical" else ColumnType.Categorical
        if c["stattest"] != stattest:
            # Not applicable to this column type: it keeps its default test.
            with pytest.raises(registry.StatTestInvalidFeatureTypeError):
                registry.get_stattest(reference[c["name"]], current[c["name"]], kind.value, stattest)
            continue
        tested += 1
        test = registry.get_stattest(reference[c["name"]], current[c["name"]], kind.value, stattest)
        r = reference[c["name"]].replace([np.inf, -np.inf], np.nan).dropna()
        k = current[c["name"]].replace([np.inf, -np.inf], np.nan).dropna()
        result = test(r, k, kind, None)
        mine = c["p_value"] if c["p_value"] is not None else c["statistic"]
        assert abs(mine - result.drift_score) <= 1e-9 * max(1e-300, abs(result.drift_score)), (c["name"], mine, result.drift_score)
        assert c["drift"] == result.drifted, (c["name"], c, result)
    assert tested >= 2
