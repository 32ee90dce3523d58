"""Connections and load cannot starve the server: a connection that sends nothing, or half its
headers, or sits idle after a request, is closed after the header-read timeout; a scoring
overload is shed with 503 while health checks keep answering."""

import socket
import subprocess
import sys
import time

import requests
from conftest import fresh_backend, start_steward, stop


# Probes a URL every 50 ms for 8 s over one keep-alive connection; prints each latency (s).
PROBE = """
import sys, time, http.client, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
end = time.monotonic() + 8
while time.monotonic() < end:
    t = time.monotonic()
    c.request("GET", u.path)
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
    print(time.monotonic() - t)
    time.sleep(0.05)
"""


def closed_by_server(sock, deadline):
    """Whether the server closes this socket (EOF or reset) before the deadline."""
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_idle_and_half_sent_connections_are_closed_after_the_timeout(tmp_path):
    proc, url = start_steward(fresh_backend(tmp_path), str(tmp_path / "artifacts"), flags=("--header-read-timeout", "2"))
    try:
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(200)]
        half = socket.create_connection((host, int(port)))
        half.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # never finished
        kept = socket.create_connection((host, int(port)))
        kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200 OK" in kept.recv(4096)
        opened = time.monotonic()
        # The server answers others while they wait.
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
        deadline = opened + 2 + 5
        still_open = [s for s in idle + [half, kept] if not closed_by_server(s, deadline)]
        assert not still_open, f"{len(still_open)} of 202 connections were still open 7 s after a 2 s timeout"
        assert time.monotonic() - opened >= 1.5, "closed before the timeout"
        assert requests.get(f"{url}/health", timeout=5).status_code == 200
    finally:
        stop(proc)


def test_an_overload_is_shed_with_503_while_health_stays_fast(server):
    """64 connections send large scoring requests at once: scoring runs a few at a time off
    the async runtime, the excess is refused with 503 and Retry-After instead of queueing
    without bound, and /health keeps answering within 100 ms throughout."""
    import threading

    import numpy as np
    from test_serving import data, deploy, onnx_of, register, unique
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = data(seed=5)
    name = unique("overload")
    register(name, onnx_of(GradientBoostingClassifier(n_estimators=100, max_depth=4, random_state=0).fit(x, y)))
    deploy(server, "create", name, "--model", f"models:/{name}/1")
    base = server["url"]
    rows = np.tile(x, (10, 1))[:20000]  # 20,000 rows per request: a few ms of work each
    body = {"inputs": [{"name": "input", "shape": list(rows.shape), "datatype": "FP32", "data": rows.ravel().tolist()}]}
    import json as _json

    payload = _json.dumps(body).encode()
    statuses, health, stop_load = [], [], threading.Event()

    def load():
        s = requests.Session()
        while not stop_load.is_set():
            try:
                r = s.post(f"{base}/v2/models/{name}/infer", data=payload, headers={"Content-Type": "application/json"})
                statuses.append((r.status_code, r.headers.get("Retry-After")))
            except requests.ConnectionError:
                # A shed request's body is not read: the server answers 503 and closes the
                # connection, which a client still sending its body may see as the close.
                statuses.append(("closed", None))
                s = requests.Session()

    workers = [threading.Thread(target=load, daemon=True) for _ in range(64)]
    for w in workers:
        w.start()
    try:
        # The probe runs in a process of its own: this one is busy being 64 clients.
        probe = subprocess.run([sys.executable, "-c", PROBE, f"{base}/health"], capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0, probe.stderr
        health = [float(t) for t in probe.stdout.split()]
    finally:
        stop_load.set()
        for w in workers:
            w.join(timeout=30)
    codes = {c for c, _ in statuses}
    shed = [r for c, r in statuses if c == 503]
    closed = sum(1 for c, _ in statuses if c == "closed")
    print(f"overload: {len(statuses)} requests, {statuses.count((200, None))} answered, {len(shed)} shed, {closed} closed while sending; /health p50 {sorted(health)[len(health) // 2] * 1000:.1f} ms, max {max(health) * 1000:.1f} ms over {len(health)} probes")
    assert codes <= {200, 503, "closed"}, codes
    assert shed and all(r == "1" for r in shed), "the excess was not shed with 503 and Retry-After"
    assert any(c == 200 for c, _ in statuses)
    assert max(health) < 0.1, f"/health took {max(health) * 1000:.0f} ms under the overload"
    metrics = requests.get(f"{base}/metrics").text
    assert "steward_scoring_overloaded_total" in metrics
