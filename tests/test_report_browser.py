"""Render report.html in headless Chromium and check what a reader would see.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-separated JSON on file descriptors 3 and 4), so the test needs only the
standard library. It records script exceptions, console errors, browser log
errors (blocked or failed loads) and every network request, measures tables
and images in the laid-out page, and saves a full-page screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mnist_bench.bench.results import report
from record_factory import make_record, write_run_dir

INJECTED = "<script>alert(1)</script> broken backend"
TIMEOUT_S = 20

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI containers run as root without user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]

# --remote-debugging-pipe reads commands on fd 3 and writes replies on fd 4.
PIPE_LAUNCHER = (
    "import os, sys; commands, replies = map(int, sys.argv[1:3]); "
    "os.dup2(commands, 3); os.dup2(replies, 4); os.close(commands); os.close(replies); "
    "os.execv(sys.argv[3], sys.argv[3:])"
)

# What the page reports about its own layout, measured by the browser.
MEASURE = """JSON.stringify({
  tables: [...document.querySelectorAll("table")].map(t => [t.getBoundingClientRect().width, t.getBoundingClientRect().height, t.rows.length]),
  images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, i.getBoundingClientRect().height]),
  scripts: document.scripts.length,
  text: document.body.innerText,
  height: document.documentElement.scrollHeight,
})"""


def find_chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("Chromium not found (/usr/bin/chromium or chromium on PATH); .ci/run installs it with "
                "`apt-get install -y chromium` -- install it the same way to run this test")


@dataclass
class Page:
    """What one page load produced."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    layout: dict = field(default_factory=dict)
    screenshot: bytes = b""


class Browser:
    """One headless Chromium, spoken to over the DevTools pipe."""

    def __init__(self, executable: str, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The child's ends move to fds >= 10, so placing them on 3 and 4 cannot clobber either.
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.process = subprocess.Popen(
            [sys.executable, "-c", PIPE_LAUNCHER, str(child_r), str(child_w),
             executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(child_r, child_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(child_r)
        os.close(child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> None:
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._receive())

    def _receive(self) -> dict:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer within %ss" % TIMEOUT_S)
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise EOFError(f"Chromium closed the pipe (exit {self.process.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def load(self, path: Path) -> Page:
        """Open ``path`` in a fresh tab; collect errors and requests, measure it, screenshot it."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 2000, "deviceScaleFactor": 1, "mobile": False}, session)
        self.events.clear()
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session)
        self.wait_for("Page.loadEventFired", session)
        page = Page()
        page.layout = json.loads(self.send("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session)["result"]["value"])
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session)
        page.screenshot = base64.b64decode(shot["data"])
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                page.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                page.errors.append("console: " + " ".join(str(arg.get("value", arg.get("description"))) for arg in params.get("args", [])))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                page.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Network.requestWillBeSent":
                page.requests.append(params["request"]["url"])
        self.send("Target.closeTarget", {"targetId": target})
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, EOFError, TimeoutError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Browser(find_chromium(), tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser-report")
    records = [
        make_record(backend=backend, mode=mode, seed=seed, samples_per_s=rate + 20 * seed, accuracy=0.98 + 0.001 * seed)
        for backend, mode, rate in (("torch", "eager", 1500.0), ("tensorflow", "eager", 900.0), ("flax-linen", "compiled", 2000.0))
        for seed in range(3)
    ]
    records.append(make_record(backend="torch", mode="compiled", status="failed", error={"message": INJECTED}))
    return report.write_report([write_run_dir(root, records)], root / "out", warn=None)["html"]


def test_checker_detects_a_broken_page(browser, tmp_path):
    """The error checks must not pass vacuously: a throwing page and a failed load are caught."""
    broken = tmp_path / "broken.html"
    broken.write_text('<p>x</p><script>console.error("logged-error"); throw new Error("deliberate-failure")</script>'
                      '<img src="https://mnist-bench.invalid/a.png">', encoding="utf-8")
    page = browser.load(broken)
    assert any("deliberate-failure" in error for error in page.errors), page.errors
    assert any("logged-error" in error for error in page.errors), page.errors
    assert any(url.startswith("https://") for url in page.requests), page.requests


def test_report_renders_cleanly(browser, report_html, tmp_path):
    page = browser.load(report_html)
    for directory in filter(None, (tmp_path, os.environ.get("MNIST_BENCH_ARTIFACTS"))):
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "report-screenshot.png").write_bytes(page.screenshot)

    assert page.errors == []
    # Only the page itself is fetched: plots are data: URIs, nothing goes to the network.
    assert [url for url in page.requests if not url.startswith("data:")] == [report_html.resolve().as_uri()]
    layout = page.layout
    assert layout["scripts"] == 0
    assert len(layout["tables"]) >= 4
    assert all(width > 100 and height > 20 and rows >= 2 for width, height, rows in layout["tables"])
    assert len(layout["images"]) >= 4
    for complete, natural_width, natural_height, width, height in layout["images"]:
        assert complete and natural_width > 100 and natural_height > 100 and width > 100 and height > 100
    # The injected markup is shown as text, not run.
    assert INJECTED in layout["text"]
    assert "flax-linen/compiled is fastest" in layout["text"]
    assert page.screenshot.startswith(b"\x89PNG") and len(page.screenshot) > 10_000
    assert (tmp_path / "report-screenshot.png").stat().st_size == len(page.screenshot)
