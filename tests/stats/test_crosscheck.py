"""Cross-checks Steward's statistics against the reference implementations on randomised
inputs: scikit-learn for model quality, Fairlearn for fairness, scipy for distances and
distributions. Inputs include ties, constant scores, tiny and unbalanced samples, and groups
without positives. Agreement: 1e-9 relative (absolute near zero)."""

import math

import numpy as np
import pytest
from fairlearn import metrics as fm
from scipy import spatial, special, stats as sst
from sklearn import metrics as skm

REL = 1e-9


def close(a, b, rel=REL):
    if b is None or (isinstance(b, float) and math.isnan(b)):
        return a is None
    return a is not None and abs(a - b) <= rel * max(1.0, abs(b))


def classification_inputs(rng):
    """Randomised binary problems: sizes from tiny to large, class balance from 1% to 50%,
    scores continuous, heavily tied (rounded) or constant."""
    cases = []
    for i in range(60):
        n = int(rng.choice([3, 5, 10, 50, 500, 5000]))
        rate = float(rng.choice([0.01, 0.1, 0.3, 0.5]))
        y = (rng.random(n) < rate).astype(int)
        y[0], y[-1] = 0, 1  # both classes present
        kind = i % 3
        s = np.clip(rng.normal(0.3 + 0.4 * y, 0.25), 0, 1)
        if kind == 1:
            s = np.round(s, 1)  # ties
        elif kind == 2:
            s = np.full(n, 0.5)  # constant
        cases.append((y, s))
    return cases


def test_classification_matches_scikit_learn(stats):
    rng = np.random.default_rng(1)
    cases = classification_inputs(rng)
    answers = stats([{"fn": "classification", "labels": y.tolist(), "scores": s.tolist(), "threshold": 0.5} for y, s in cases])
    for (y, s), got in zip(cases, answers):
        pred = (s >= 0.5).astype(int)
        assert close(got["accuracy"], skm.accuracy_score(y, pred))
        assert close(got["precision"], skm.precision_score(y, pred, zero_division=0))
        assert close(got["recall"], skm.recall_score(y, pred, zero_division=0))
        assert close(got["f1"], skm.f1_score(y, pred, zero_division=0))
        assert close(got["roc_auc"], skm.roc_auc_score(y, s)), (got["roc_auc"], skm.roc_auc_score(y, s))
        assert close(got["pr_auc"], skm.average_precision_score(y, s))
        assert close(got["log_loss"], skm.log_loss(y, s, labels=[0, 1]))
        assert close(got["brier"], skm.brier_score_loss(y, s))
        assert got["confusion"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
        ks = sst.ks_2samp(s[y == 1], s[y == 0]).statistic
        assert close(got["ks"], ks), (got["ks"], ks)
        assert close(got["gini"], 2 * skm.roc_auc_score(y, s) - 1)


def test_classification_with_one_class_has_no_auc(stats):
    [got] = stats([{"fn": "classification", "labels": [0, 0, 0], "scores": [0.1, 0.7, 0.2]}])
    assert got["roc_auc"] is None and got["ks"] is None and got["pr_auc"] is None
    assert close(got["accuracy"], 2 / 3)


def test_bad_inputs_are_refused(stats):
    answers = stats([
        {"fn": "classification", "labels": [0, 1], "scores": [0.2]},
        {"fn": "classification", "labels": [0, 2], "scores": [0.2, 0.3]},
        {"fn": "classification", "labels": [0, 1], "scores": [0.2, None]},
        {"fn": "regression", "truth": [], "predicted": []},
        {"fn": "nope"},
    ])
    assert "2 labels but 1 predictions" in answers[0]["error"]
    assert "must be 0 or 1" in answers[1]["error"]
    assert "scores" in answers[2]["error"]
    assert "at least one row" in answers[3]["error"]
    assert "unknown fn" in answers[4]["error"]


def test_regression_matches_scikit_learn(stats):
    rng = np.random.default_rng(2)
    cases = []
    for i in range(40):
        n = int(rng.choice([1, 2, 10, 1000]))
        y = rng.normal(100, 30, n)
        if i % 5 == 0:
            y[: n // 2] = 0.0  # zeros: MAPE's epsilon
        if i % 7 == 0:
            y = np.full(n, 3.0)  # constant truth: R² edge cases
        p = y + rng.normal(0, 10, n) if i % 11 else y.copy()
        cases.append((y, p))
    answers = stats([{"fn": "regression", "truth": y.tolist(), "predicted": p.tolist()} for y, p in cases])
    for (y, p), got in zip(cases, answers):
        assert close(got["mae"], skm.mean_absolute_error(y, p))
        assert close(got["rmse"], skm.root_mean_squared_error(y, p))
        assert close(got["mape"], skm.mean_absolute_percentage_error(y, p), rel=1e-9)
        assert close(got["r2"], skm.r2_score(y, p)), (got["r2"], skm.r2_score(y, p))


def test_fairness_matches_fairlearn(stats):
    rng = np.random.default_rng(3)
    cases = []
    for i in range(40):
        n = int(rng.choice([20, 200, 3000]))
        groups = rng.choice(["18-25", "26-40", "41-65", "65+"][: 2 + i % 3], n, p=None)
        y = (rng.random(n) < 0.3).astype(int)
        bias = np.where(groups == "18-25", -0.15, 0.0)
        pred = (rng.random(n) < 0.35 + bias).astype(int)
        cases.append((pred, y, groups))
    answers = stats([{"fn": "fairness", "predicted": p.tolist(), "labels": y.tolist(), "groups": g.tolist()} for p, y, g in cases])
    for (p, y, g), got in zip(cases, answers):
        assert close(got["demographic_parity_difference"], fm.demographic_parity_difference(y, p, sensitive_features=g))
        assert close(got["demographic_parity_ratio"], fm.demographic_parity_ratio(y, p, sensitive_features=g))
        assert close(got["equalized_odds_difference"], fm.equalized_odds_difference(y, p, sensitive_features=g))
        assert close(got["equalized_odds_ratio"], fm.equalized_odds_ratio(y, p, sensitive_features=g))
        assert close(got["equal_opportunity_difference"], fm.equal_opportunity_difference(y, p, sensitive_features=g))
        frame = fm.MetricFrame(metrics=fm.selection_rate, y_true=y, y_pred=p, sensitive_features=g)
        for group, rate in frame.by_group.items():
            assert close(got["groups"][group]["selection_rate"], rate)
        air = fm.demographic_parity_ratio(y, p, sensitive_features=g)
        assert got["four_fifths_violated"] == (air < 0.8)


def histograms(rng, n):
    out = []
    for i in range(n):
        bins = int(rng.choice([2, 5, 10, 20]))
        p = rng.random(bins) + 0.01
        q = p * rng.uniform(0.5, 1.5, bins) if i % 2 else rng.random(bins) + 0.01
        out.append((p / p.sum(), q / q.sum()))
    return out


def test_distances_match_scipy(stats):
    rng = np.random.default_rng(4)
    hists = histograms(rng, 30)
    reqs = []
    for p, q in hists:
        for f in ("psi", "kl", "hellinger", "jensenshannon"):
            reqs.append({"fn": f, "p": p.tolist(), "q": q.tolist()})
        reqs.append({"fn": "jensenshannon", "p": p.tolist(), "q": q.tolist(), "base": 2})
    samples = []
    for i in range(30):
        u = rng.normal(0, 1, int(rng.choice([1, 5, 100, 2000])))
        v = rng.normal(0.3, 1.2, int(rng.choice([1, 7, 100, 3000])))
        if i % 3 == 0:
            u, v = np.round(u, 1), np.round(v, 1)  # ties
        samples.append((u, v))
        reqs.append({"fn": "wasserstein", "u": u.tolist(), "v": v.tolist()})
    chi = [(float(rng.uniform(0, 200)), float(rng.choice([0.5, 1, 2, 3, 7, 30, 100]))) for _ in range(40)]
    reqs += [{"fn": "chi2_sf", "x": x, "df": df} for x, df in chi]
    answers = iter(stats(reqs))
    for p, q in hists:
        assert close(next(answers), float(np.sum((q - p) * np.log(q / p))))
        assert close(next(answers), sst.entropy(p, q))
        assert close(next(answers), float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)) / np.sqrt(2)))
        assert close(next(answers), spatial.distance.jensenshannon(p, q), rel=1e-7)
        assert close(next(answers), spatial.distance.jensenshannon(p, q, base=2), rel=1e-7)
    for u, v in samples:
        assert close(next(answers), sst.wasserstein_distance(u, v))
    for x, df in chi:
        want = sst.chi2.sf(x, df)
        got = next(answers)
        assert abs(got - want) <= 1e-9 * max(want, 1e-300) or abs(got - want) < 1e-300, (x, df, got, want)


def test_ks_2samp_matches_scipy(stats):
    rng = np.random.default_rng(5)
    cases = []
    for i in range(120):
        n1, n2 = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        if i % 4 == 0:
            n2 = n1  # equal sizes: the other exact method
        x = rng.normal(0, 1, n1)
        y = rng.normal(rng.choice([0.0, 0.3, 1.5]), 1, n2)
        if i % 3 == 0:
            x, y = np.round(x), np.round(y)  # heavy ties
        cases.append((x, y))
    for n1, n2, shift in [(3000, 2000, 0.05), (10001, 12000, 0.02), (10001, 12000, 0.3), (20000, 150, 0.1), (15000, 40, 0.5)]:
        cases.append((rng.normal(0, 1, n1), rng.normal(shift, 1, n2)))
    answers = stats([{"fn": "ks_2samp", "x": x.tolist(), "y": y.tolist()} for x, y in cases])
    for (x, y), got in zip(cases, answers):
        want = sst.ks_2samp(x, y)
        assert close(got["statistic"], float(want.statistic)), (len(x), len(y), got, want)
        assert abs(got["p_value"] - want.pvalue) <= 1e-9 * max(want.pvalue, 1e-300) or abs(got["p_value"] - want.pvalue) < 1e-300, (len(x), len(y), got, want)


def test_kolmogorov_distribution_matches_scipy(stats):
    rng = np.random.default_rng(6)
    points = []
    for n in [1, 2, 5, 10, 50, 140, 141, 500, 5000, 100_000, 2_000_000]:
        for x in sorted(rng.uniform(0, 1, 12) ** 3):
            points.append((n, float(x)))
    answers = stats([{"fn": "kstwo_sf", "n": n, "x": x} for n, x in points])
    for (n, x), got in zip(points, answers):
        want = sst.kstwo.sf(x, n)
        assert abs(got - want) <= 1e-9 * max(want, 1e-300) or abs(got - want) < 1e-300, (n, x, got, want)


def test_label_free_estimate_tracks_realised_quality(stats):
    """CBPE: on calibrated probabilities, the estimated accuracy and ROC AUC match what the
    labels later show (within sampling error: 20,000 rows, 0.01), and equal the closed forms."""
    rng = np.random.default_rng(7)
    cases = []
    for a, b in [(2, 5), (0.5, 0.5), (5, 2)]:
        p = rng.beta(a, b, 20_000)
        y = (rng.random(20_000) < p).astype(int)  # calibrated by construction
        cases.append((p, y))
    answers = stats([{"fn": "estimate", "probabilities": p.tolist()} for p, _ in cases])
    for (p, y), got in zip(cases, answers):
        assert abs(got["accuracy"] - skm.accuracy_score(y, p >= 0.5)) < 0.01
        assert abs(got["roc_auc"] - skm.roc_auc_score(y, p)) < 0.01
        assert close(got["accuracy"], float(np.mean(np.where(p >= 0.5, p, 1 - p))))
        # The expected AUC as NannyML 0.13 computes it (estimate_roc_auc): rows weighted p and
        # 1 - p down the scores, the cumulative counts rounded to five decimals.
        order = np.argsort(-p, kind="stable")
        tp = np.cumsum(p[order])
        fp = 1 + np.arange(len(p)) - tp
        tp, fp = np.round(np.r_[0, tp], 5), np.round(np.r_[0, fp], 5)
        assert close(got["roc_auc"], float(np.trapezoid(tp / tp[-1], fp / fp[-1])), rel=1e-9)
