"""`steward demo`: the flagship scenario on the embedded default. The drift is alerted within
one monitoring window of its onset, the agent retrains, canaries and promotes the challenger,
and the demo's ledger verifies with `steward audit verify`. The demo's models then get their
documents from a server on the demo's data: the SR 11-7 validation report has every section
with the scenario's figures, the model card and the Annex IV outline build, and bad requests
are refused by name. An earlier demo's directory is replaced; any other directory is
refused."""

import subprocess

import requests
from conftest import steward_bin
from mlflow.tracking import MlflowClient

SECTIONS = ["1. Purpose and intended use", "2. Data and lineage", "3. Methodology", "4. Performance", "5. Stability", "6. Fairness analysis",
            "7. Limitations", "8. Ongoing monitoring plan", "9. Declared retraining policy", "10. Approvals"]


def test_demo_tells_the_whole_story(demo):
    out = demo["out"]
    print(f"steward demo took {demo['seconds']:.1f} s")
    assert out["drift_onset"] < out["first_alert"] <= out["drift_onset"] + out["window_size"], out
    # Alerts open when a condition starts and resolve when it ends: a handful, not one per
    # window. Any alert before the shift counts as a false alarm, and the drift monitor raised none.
    assert sum(out["alerts"].values()) <= 10 and out["alerts"]["data_drift"] >= 1, out
    assert out["false_alarms"] == sum(out["alerts_before_onset"].values()) and "data_drift" not in out["alerts_before_onset"], out
    assert out["promoted"] is True and out["rolled_back"] is False and out["challenger_version"] == 2, out
    assert out["incident_id"], out
    assert out["human_actions"] == 0, out  # the demo policy auto-approves, and says so
    assert out["ledger_verified"] is True and out["ledger_entries"] > 50, out
    for line in ["incident timeline", "served quality", "audit ledger:", "validation report (SR 11-7)"]:
        assert line in demo["stdout"], demo["stdout"]
    verify = subprocess.run([steward_bin(), "audit", "verify", "--backend-store-uri", f"sqlite:///{demo['dir'] / 'steward.db'}"], capture_output=True, text=True)
    assert verify.returncode == 0 and "audit ledger intact" in verify.stdout, verify.stdout + verify.stderr
    report = (demo["dir"] / "demo-report.md").read_text()
    assert "| promote | done |" in report and "| retrain | done |" in report, report
    assert out["validation_report"].endswith("validation-report-v2.html")
    html = open(out["validation_report"]).read()
    assert all(title in html for title in SECTIONS) and "<script" not in html and "http" not in html.split("<body>")[0]


def test_the_registry_says_what_production_serves(demo, demo_server):
    """After the agent's promotion, the registry's champion alias, the deployment's champion
    route and the alias history agree on the promoted version; the promotion is one decision
    in the ledger, with its evidence."""
    base = demo_server
    promoted = str(demo["out"]["challenger_version"])
    alias = requests.get(f"{base}/api/2.0/mlflow/registered-models/alias", params={"name": "credit-default", "alias": "champion"}).json()
    assert alias["model_version"]["version"] == promoted, alias
    deployment = requests.get(f"{base}/api/steward/v1/deployments/credit").json()["deployment"]
    assert deployment["model"] == "models:/credit-default@champion", deployment
    assert [(r["role"], r["version"]) for r in deployment["routes"]] == [("champion", int(promoted))], deployment
    assert deployment["fallback"] == "models:/credit-default/1", deployment
    events = requests.get(f"{base}/api/steward/v1/registry/models/credit-default/history").json()["events"]
    champion = [(e["version"], e["actor"]) for e in events if e["kind"] == "alias" and e["label"] == "champion"]
    assert champion[-1] == (promoted, "agent") and champion[0][0] == "1", champion
    now = requests.get(f"{base}/api/steward/v1/registry/models/credit-default/aliases/champion").json()
    assert now["version"] == promoted, now
    entries = requests.get(f"{base}/api/steward/v1/audit", params={"limit": 10000}).json()["entries"]
    (promotion,) = [e for e in entries if e["action"] == "deployment.promote"]
    (moved,) = [e for e in entries if e["action"] == "registered_model.set_alias" and e["actor"] == "agent"]
    assert moved["seq"] == promotion["seq"] - 1 and moved["reason"] == promotion["reason"], (moved, promotion)
    assert promotion["reason"].startswith("agent action ") and "passed every gate" in promotion["reason"], promotion


def test_the_validation_report_has_every_section_with_the_scenarios_figures(demo, demo_server, tmp_path):
    base = demo_server
    made = subprocess.run([steward_bin(), "report", "model", "credit-default", "--version", "2", "--out", str(tmp_path / "v2.md"), "--tracking-uri", base], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    md = (tmp_path / "v2.md").read_text()
    for title in SECTIONS:
        assert f"## {title}" in md, title
    # The scenario's own figures: the version's holdout AUC as MLflow reports it, its interval,
    # the dataset it was trained on, the policy's triggers, the production windows, the ledger.
    client = MlflowClient(base)
    run = client.get_run(client.get_model_version("credit-default", "2").run_id)
    auc = run.data.metrics["roc_auc"]
    assert f"| ROC AUC | {auc:.4f} |" in md, md
    assert "95% interval" in md and "Hanley & McNeil" in md
    assert "credit-recent v1" in md and "sha256:" in md
    assert "| auc-floor | roc_auc below 0.65 for 2 window(s) | performance_decay | retrain |" in md, md
    assert "ROC AUC per labelled window in production" in md and "| credit |" in md
    assert "verified intact" in md
    # The canary the agent's retraining put on the deployment is the agent action's, not a
    # person's override; the person's deployment of v1 came before the policy governed anything.
    entries = requests.get(f"{base}/api/steward/v1/audit", params={"limit": 10000}).json()["entries"]
    canary = [e for e in entries if e["entity_id"] == "credit" and e["action"] == "deployment.update" and e["actor"] != "agent"]
    assert len(canary) == 1 and canary[0]["reason"].startswith("agent action ") and "(retrain)" in canary[0]["reason"], canary
    forged = requests.patch(f"{base}/api/steward/v1/deployments/credit", json={"shadow": None}, headers={"X-Steward-Agent-Action": "not-an-action"})
    assert forged.status_code == 400 and "not-an-action" in forged.json()["message"], forged.text
    v1 = requests.get(f"{base}/api/steward/v1/registry/models/credit-default/versions/1/documents/validation-report", params={"format": "md"})
    assert v1.status_code == 200 and "demo: v1 validated and approved for production" in v1.text and "alias 'champion' set to this version" in v1.text, v1.text
    for kind, needle in [("model-card", "## Model details"), ("annex-iv", "2(f). Pre-determined changes (Art. 43(4))")]:
        doc = requests.get(f"{base}/api/steward/v1/registry/models/credit-default/versions/2/documents/{kind}", params={"format": "md"})
        assert doc.status_code == 200 and needle in doc.text, (kind, doc.text[:500])
    bad = requests.get(f"{base}/api/steward/v1/registry/models/credit-default/versions/2/documents/brochure")
    assert bad.status_code == 400 and "brochure" in bad.json()["message"]
    missing = requests.get(f"{base}/api/steward/v1/registry/models/credit-default/versions/9/documents/model-card")
    assert missing.status_code == 404 and missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    wrong = subprocess.run([steward_bin(), "report", "model", "credit-default", "--version", "9", "--out", str(tmp_path / "x.html"), "--tracking-uri", base], capture_output=True, text=True)
    assert wrong.returncode == 1 and "version" in wrong.stderr.lower() and not (tmp_path / "x.html").exists(), wrong.stderr


def test_demo_replaces_only_its_own_directory(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    proc = subprocess.run([steward_bin(), "demo", "--dir", str(tmp_path / "precious")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "is not an earlier demo's directory" in proc.stderr, proc.stderr
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
