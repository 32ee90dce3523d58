"""The Grafana dashboard shipped in deploy/grafana queries only metrics the server exposes."""

import json
import re

import requests
from conftest import REPO


def test_dashboard_queries_only_exposed_metrics(server):
    dashboard = json.loads((REPO / "deploy" / "grafana" / "steward-dashboard.json").read_text())
    exposed = set(re.findall(r"^# TYPE (\S+) ", requests.get(f"{server['url']}/metrics").text, re.M))
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= set(re.findall(r"\b(steward_[a-z_]+)", target["expr"]))
    assert queried, "the dashboard queries nothing"
    family = lambda m: re.sub(r"_(bucket|sum|count)$", "", m) if re.sub(r"_(bucket|sum|count)$", "", m) in exposed else m
    missing = {m for m in queried if family(m) not in exposed}
    assert not missing, f"queried but not exposed: {missing}"
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))
