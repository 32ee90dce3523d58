"""The web UI in headless Chromium (Debian's `chromium`, driven over the DevTools protocol),
after the demo scenario: every page
loads without console errors and shows the scenario's runs, versions, deployments, alerts,
incidents and ledger entries; a screenshot of each page is kept (STEWARD_UI_SCREENSHOTS,
default target/ui-screenshots). The run comparison chart draws 100,000 points; the time it
took is printed (a benchmark figure for BENCHMARKS.md, not an assertion)."""

import os
import re
from pathlib import Path

import requests
from conftest import REPO
from mlflow.tracking import MlflowClient

SHOTS = Path(os.environ.get("STEWARD_UI_SCREENSHOTS", REPO / "target" / "ui-screenshots"))


def page(browser, url, shot):
    """The rendered DOM of a page once its view is ready, failing on console errors; keeps a
    screenshot."""
    browser.open(url)
    assert not browser.errors(), (url, browser.errors())
    browser.screenshot(SHOTS / (shot + ".png"))
    assert (SHOTS / (shot + ".png")).stat().st_size > 10_000, shot
    return browser.html()


def test_every_page_shows_the_scenario(demo, demo_server, browser):
    base = demo_server
    client = MlflowClient(base)
    experiment = client.get_experiment_by_name("credit-default")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert requests.get(f"{base}/").headers["content-type"].startswith("text/html")
    assert "http" not in requests.get(f"{base}/").text.replace("http-equiv", ""), "the page loads nothing from elsewhere"

    dom = page(browser, f"{base}/#/experiments", "experiments")
    assert "credit-default" in dom
    dom = page(browser, f"{base}/#/experiments/{experiment.experiment_id}", "runs")
    names = {r.info.run_name for r in runs}
    assert names and all(n in dom for n in names), names
    assert "roc_auc" in dom and f"{len(runs)} runs" in dom
    pipeline = next(r for r in runs if r.info.run_name == "credit-default-pipeline")
    dom = page(browser, f"{base}/#/runs/{pipeline.info.run_id}", "run")
    assert "steward.dataset" in dom
    dom = page(browser, f"{base}/#/models", "registry")
    assert "credit-default" in dom
    dom = page(browser, f"{base}/#/models/credit-default", "model")
    assert "champion" in dom and "challenger" in dom and "validation report" in dom and "Annex IV" in dom
    # The versions table shows each version's aliases: v2, promoted, holds champion (and challenger).
    pills = re.findall(r'<tr><td[^>]*>(\d+)</td><td[^>]*>((?:<span class="pill alias">[^<]*</span>)*)</td>', dom)
    shown = {int(v): re.findall(r'<span class="pill alias">([^<]*)</span>', cell) for v, cell in pills}
    assert shown.get(2) == ["challenger", "champion"] and shown.get(1) == [], (shown, dom[:3000])
    dom = page(browser, f"{base}/#/lineage/credit-default/2", "lineage")
    assert "dataset credit-recent v1" in dom and "deployment credit" in dom
    dom = page(browser, f"{base}/#/deployments", "deployments")
    assert "credit-default v2" in dom and "champion" in dom
    dom = page(browser, f"{base}/#/monitoring/credit", "monitoring")
    assert dom.count("<canvas") >= 4 and "data_drift" in dom and "drift_share" in dom
    dom = page(browser, f"{base}/#/incidents", "incidents")
    assert "performance decay on credit" in dom and "Analysis (rules)" in dom
    assert re.search(r"<tr><td[^>]*>[^<]*</td><td[^>]*>retrain</td><td[^>]*>done</td><td[^>]*>policy</td>", dom), "the retraining row of the incident's actions"
    dom = page(browser, f"{base}/#/approvals", "approvals")
    assert "Nothing waits for approval." in dom
    dom = page(browser, f"{base}/#/audit", "audit")
    assert "Ledger verified intact" in dom and "incident.open" in dom and "deployment.update" in dom


def test_a_run_comparison_with_100k_points(demo_server, browser):
    base = demo_server
    api = f"{base}/api/2.0/mlflow"
    experiment = requests.post(f"{api}/experiments/create", json={"name": "chart-benchmark"}).json()["experiment_id"]
    run_ids = []
    for name, scale in [("a", 1.0), ("b", 0.8)]:
        run = requests.post(f"{api}/runs/create", json={"experiment_id": experiment, "run_name": name}).json()["run"]["info"]["run_id"]
        run_ids.append(run)
        for start in range(0, 50_000, 1000):
            metrics = [{"key": "loss", "value": scale / (1 + step / 5000), "timestamp": 1_700_000_000_000 + step, "step": step} for step in range(start, start + 1000)]
            assert requests.post(f"{api}/runs/log-batch", json={"run_id": run, "metrics": metrics}).status_code == 200
    dom = page(browser, f"{base}/#/compare?runs={','.join(run_ids)}&metric=loss", "compare-100k")
    canvas = re.search(r'<canvas[^>]*id="compare-chart"[^>]*>', dom).group(0)
    points = int(re.search(r'data-points="(\d+)"', canvas).group(1))
    total = float(re.search(r'data-total-ms="([\d.]+)"', canvas).group(1))
    draw = float(re.search(r'data-draw-ms="([\d.]+)"', canvas).group(1))
    assert points == 100_000, canvas
    print(f"run comparison: {points} points fetched and drawn in {total:.0f} ms (drawing alone {draw:.0f} ms) in headless Chromium")


def test_a_server_that_requires_a_token_asks_for_one(tmp_path, browser):
    import subprocess

    from conftest import start_steward, steward_bin, stop

    backend = f"sqlite:///{tmp_path / 'steward.db'}"
    subprocess.run([steward_bin(), "user", "create", "vera", "--role", "validator", "--backend-store-uri", backend], check=True, capture_output=True)
    token = subprocess.run([steward_bin(), "token", "create", "--user", "vera", "--backend-store-uri", backend], check=True, capture_output=True, text=True).stdout.strip()
    proc, base = start_steward(backend, str(tmp_path / "artifacts"))
    try:
        browser.open(f"{base}/#/experiments")
        dom = browser.html()
        # The refused API call is logged by the browser; nothing else may be.
        assert not [e for e in browser.errors() if "401" not in e], browser.errors()
        browser.screenshot(SHOTS / "sign-in.png")
        assert "Sign in" in dom and "this server requires a token" in dom and "This page could not be loaded" not in dom
        browser.evaluate(f"sessionStorage.setItem('steward-token', {token!r}); location.reload(); true")
        browser.open(f"{base}/#/experiments")
        assert "Default" in browser.html() and not browser.errors()
    finally:
        stop(proc)
