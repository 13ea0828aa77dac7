"""Open a page in headless Chromium over the DevTools protocol and collect what a user would see.

Used by the report's browser test: the page must load, log no console error and throw no
exception, and the verdict elements must be in the rendered DOM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageVisit:
    loaded: bool = False
    errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


def visit(chromium: str, page: Path, expressions: dict[str, str], *, timeout: float = 60.0) -> PageVisit:
    """Load ``page`` (a file) and evaluate each JavaScript expression once it has loaded."""
    from websockets.sync.client import connect

    # Chromium helpers may still write into the profile as it exits: a leftover is not an error.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + timeout
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("chromium did not open its DevTools port")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            targets = _get_json(f"http://127.0.0.1:{port}/json/list", deadline)
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            with connect(ws_url, max_size=None, open_timeout=timeout) as ws:
                return _drive(ws, page, expressions, deadline)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _get_json(url: str, deadline: float) -> Any:
    import urllib.request

    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _drive(ws: Any, page: Path, expressions: dict[str, str], deadline: float) -> PageVisit:
    seen = PageVisit()
    ids = iter(range(1, 100_000))

    def note(msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            seen.errors.append(json.dumps(params["exceptionDetails"])[:300])
        elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            seen.errors.append(json.dumps(params["args"])[:300])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            seen.errors.append(params["entry"].get("text", "")[:300])

    def call(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        # One command at a time, each awaited: events in between are collected, none is missed.
        i = next(ids)
        ws.send(json.dumps({"id": i, "method": method, "params": params or {}}))
        while True:
            raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if os.environ.get("SYNTHGEN_BROWSER_TRACE"):
                print("cdp:", raw[:160], file=sys.stderr)
            msg = json.loads(raw)
            if msg.get("id") == i:
                return dict(msg.get("result", {}))
            note(msg)

    def value(expression: str) -> Any:
        return (
            call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
            .get("result", {})
            .get("value")
        )

    for method in ("Runtime.enable", "Log.enable", "Page.enable"):
        call(method)
    call("Page.navigate", {"url": page.resolve().as_uri()})
    while time.monotonic() < deadline:
        if value("document.readyState") == "complete" and value("location.href") == page.resolve().as_uri():
            seen.loaded = True
            break
        time.sleep(0.1)
    if seen.loaded:
        seen.values = {name: value(expr) for name, expr in expressions.items()}
        time.sleep(0.3)
        value("0")  # drain events that arrived meanwhile
    return seen
