"""A small DevTools-protocol client for headless Chromium: open a page of the UI, wait until its
view has rendered, read the DOM, collect console errors and uncaught exceptions, take
screenshots. Timing read in the page is real time (no virtual time)."""

import base64
import json
import os
import re
import subprocess
import time
from urllib.parse import urlparse

import requests
import websocket

CHROMIUM = os.environ.get("STEWARD_CHROMIUM", "/usr/bin/chromium")


class Browser:
    def __init__(self):
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--remote-debugging-port=0",
             "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.time() + 60
        endpoint = None
        while endpoint is None and time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            endpoint = m.group(1) if m else None
        assert endpoint, "chromium did not open its DevTools endpoint"
        port = urlparse(endpoint).port
        page = next(t for t in requests.get(f"http://127.0.0.1:{port}/json/list").json() if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120, suppress_origin=True)
        self.next_id, self.events = 0, []
        for domain in ("Runtime", "Page", "Log"):
            self.call(f"{domain}.enable")

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def evaluate(self, expression):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url, timeout=60):
        """Loads `url` afresh and waits until the UI says its view is ready."""
        self.call("Page.navigate", url="about:blank")
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.evaluate("(() => { const m = document.getElementById('main'); return !!m && m.dataset.ready === 'true'; })()"):
                return
            time.sleep(0.1)
        raise AssertionError(f"{url} did not render within {timeout} s")

    def html(self):
        return self.evaluate("document.documentElement.outerHTML")

    def errors(self):
        """Console errors, uncaught exceptions and failed loads since the last `open`."""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(d.get("exception", {}).get("description") or d.get("text"))
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"] + " " + p["entry"].get("url", ""))
        return out

    def screenshot(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=10)
