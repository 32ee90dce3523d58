"""`steward demo`: the flagship scenario on the embedded default. The drift is alerted within
one monitoring window of its onset, the agent retrains, canaries and promotes the challenger,
and the demo's ledger verifies with `steward audit verify`. An earlier demo's directory is
replaced; any other directory is refused."""

import json
import subprocess
import time

import requests  # noqa: F401  (the suite's common imports)
from conftest import steward_bin


def test_demo_tells_the_whole_story(tmp_path):
    started = time.monotonic()
    proc = subprocess.run([steward_bin(), "demo", "--dir", str(tmp_path / "demo"), "--json", str(tmp_path / "out.json")], capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    print(f"steward demo took {took:.1f} s")
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["drift_onset"] < out["first_alert"] <= out["drift_onset"] + out["window_size"], out
    assert out["false_alarms"] == 0, out
    assert out["promoted"] is True and out["rolled_back"] is False and out["challenger_version"] == 2, out
    assert out["incident_id"], out
    assert out["human_actions"] == 0, out  # the demo policy auto-approves, and says so
    assert out["ledger_verified"] is True and out["ledger_entries"] > 50, out
    for line in ["incident timeline", "served quality", "audit ledger:"]:
        assert line in proc.stdout, proc.stdout
    verify = subprocess.run([steward_bin(), "audit", "verify", "--backend-store-uri", f"sqlite:///{tmp_path / 'demo' / 'steward.db'}"], capture_output=True, text=True)
    assert verify.returncode == 0 and "audit ledger intact" in verify.stdout, verify.stdout + verify.stderr
    report = (tmp_path / "demo" / "demo-report.md").read_text()
    assert "| promote | done |" in report and "| retrain | done |" in report, report


def test_demo_replaces_only_its_own_directory(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    proc = subprocess.run([steward_bin(), "demo", "--dir", str(tmp_path / "precious")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "is not an earlier demo's directory" in proc.stderr, proc.stderr
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
