"""Render an HTML file with the real headless Chromium, for the tests of HTML that people open and print.

The browser is driven over the DevTools Protocol on `--remote-debugging-pipe` (JSON messages ended by NUL
on the browser's fds 3 and 4), so neither a websocket client nor Playwright is needed. Every request that
is not the file itself or `data:`/`about:`/`blob:` is recorded and failed without touching the network: a
self-contained page must render the same offline, and a test must never wait on the internet.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import json
import math
import os
import select
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM: str | None = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (apt-get install chromium)"
)

TIMEOUT_S = 60.0
A4_INCHES = (8.27, 11.69)
IN_PAGE = ("data:", "about:", "blob:")  # schemes that never leave the page

# Every picture in the page and whether it shows. An <img> can say so itself; an inline <svg>, an <object>
# or an <embed> cannot, so those count as broken only when they take no room on the page.
PICTURES_JS = """
(async () => {
  const settle = (img) => img.complete ? null : new Promise((done) => {
    img.addEventListener('load', done); img.addEventListener('error', done); setTimeout(done, 5000);
  });
  await Promise.all([...document.images].map(settle));
  await document.fonts.ready;
  const broken = [];
  for (const img of document.images)
    if (!img.complete || img.naturalWidth === 0) broken.push(img.currentSrc || img.src || '<img>');
  const boxes = [...document.querySelectorAll('object, embed, svg')]
    .filter((e) => !e.parentElement.closest('svg'));
  for (const e of boxes) {
    const r = e.getBoundingClientRect();
    const name = e.getAttribute('data') || e.getAttribute('src') || '<' + e.localName + '>';
    if (r.width === 0 || r.height === 0) broken.push(name);
  }
  return {count: document.images.length + boxes.length, broken};
})()
"""


class ChromiumError(RuntimeError):
    """Chromium failed, hung or answered with an error; the message ends with the tail of its stderr."""


@dataclass
class Rendered:
    """What a page did in the browser, and what it printed."""

    images: int
    broken_images: list[str]
    requests: list[str]
    outside_requests: list[str]
    pdf_pages: list[str] = field(repr=False)
    png: Path | None
    pdf: Path | None
    failed_requests: list[str] = field(default_factory=list)  # "URL: why", blocked ones included


def render(html: Path, png: Path | None = None, pdf: Path | None = None, width: int = 1200) -> Rendered:
    """Open `html` in a fresh headless Chromium; screenshot the whole page to `png`, print A4 to `pdf`."""
    with Chromium() as browser:
        return browser.render(html, png=png, pdf=pdf, width=width)


def _inside(url: str, page: str) -> bool:
    return url.split("#")[0] == page or url.startswith(IN_PAGE)


def shorten(url: str, keep: int = 80) -> str:
    return url if len(url) <= keep else url[: keep - 1] + "…"


def _end_group(pgid: int) -> None:
    """Kill a process group we started and reap all of it.

    Chromium's zygotes outlive the browser for a moment, even when it quits cleanly; orphaned, they go to
    the init process, which in some containers never reaps them. As a child subreaper for the moment,
    this process gets them instead, and reaps them.
    """
    was = _subreaper(True)
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while True:
                os.waitpid(-pgid, 0)
    finally:
        _subreaper(was)


def _subreaper(on: bool) -> bool:
    """Set Linux's child-subreaper flag of this process; say what it was (False where there is none)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        was = ctypes.c_int(0)
        libc.prctl(37, ctypes.byref(was), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
        libc.prctl(36, int(on), 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        return bool(was.value)
    except (OSError, AttributeError):
        return False


class Chromium:
    """One headless Chromium process; `render` each page in a browser context of its own."""

    def __init__(self, timeout_s: float = TIMEOUT_S):
        if CHROMIUM is None:
            raise ChromiumError("headless Chromium is not installed (apt-get install chromium)")
        self.timeout_s = timeout_s
        self._pid: int | None = None
        self._dir: str | None = None
        self._next_id = 0
        self._buffer = bytearray()
        self._events: list[dict] = []
        self._write_fd: int | None = None
        self._read_fd: int | None = None
        self._session: str | None = None  # the page whose requests are recorded
        self._page_url = ""
        self._requests: list[str] = []
        self._failed: list[str] = []
        self._ids: dict[str, str] = {}  # request id -> URL, to name the failed ones

    def __enter__(self) -> Chromium:
        self._dir = tempfile.mkdtemp(prefix="vitcli-chromium-")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        # The browser's ends go to fds 3 and 4 in the child by posix_spawn's dup2; lifting them above 9
        # first means no dup2 can clobber the other end or be a no-op that leaves close-on-exec set.
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        child_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._write_fd, self._read_fd = to_browser_w, from_browser_r
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB, too little for big pages
            f"--user-data-dir={self._dir}/profile",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-component-update",
            "--disable-background-networking",
            "--disable-sync",
            "--mute-audio",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        null = os.devnull
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, null, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, null, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, f"{self._dir}/stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_DUP2, child_r, 3),
            (os.POSIX_SPAWN_DUP2, child_w, 4),
        ]
        try:
            # A process group of its own, so that closing ends the renderers and helpers too.
            self._pid = os.posix_spawn(CHROMIUM, args, os.environ, file_actions=actions, setpgroup=0)
        finally:
            os.close(child_r)
            os.close(child_w)
        self._deadline = time.monotonic() + self.timeout_s
        self._call("Browser.getVersion")

    def close(self) -> None:
        """End the browser and its children and remove its profile, whatever state they are in."""
        if self._pid is not None:
            _end_group(self._pid)
            self._pid = None
        for name in ("_write_fd", "_read_fd"):
            if getattr(self, name) is not None:
                os.close(getattr(self, name))
                setattr(self, name, None)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def render(
        self, html: Path, png: Path | None = None, pdf: Path | None = None, width: int = 1200
    ) -> Rendered:
        """Load `html`, check its pictures and requests, and write the screenshot and the PDF asked for."""
        self._deadline = time.monotonic() + self.timeout_s
        url = Path(html).resolve().as_uri()
        # A browser context of its own: no cache or storage carried over from the page rendered before.
        context = self._call("Target.createBrowserContext")["browserContextId"]
        target = self._call("Target.createTarget", url="about:blank", browserContextId=context)["targetId"]
        session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._events.clear()
        self._page_url = url
        self._session, self._requests, self._failed, self._ids = session, [], [], {}
        for domain in ("Page", "Network"):
            self._call(f"{domain}.enable", session=session)
        self._call("Page.setLifecycleEventsEnabled", session=session, enabled=True)
        self._call("Fetch.enable", session=session, patterns=[{"urlPattern": "*"}])
        self._view(session, width, 800)
        navigated = self._call("Page.navigate", session=session, url=url)
        if "errorText" in navigated:
            raise ChromiumError(f"{url} did not load: {navigated['errorText']}{self._stderr_tail()}")
        # The load of this navigation, not that of the about:blank the tab opened with.
        self._wait_event(session, "Page.lifecycleEvent", name="load", loaderId=navigated["loaderId"])
        # The whole page in the viewport, so that lazy pictures load and the screenshot takes it all.
        size = self._call("Page.getLayoutMetrics", session=session)["cssContentSize"]
        self._view(session, width, math.ceil(size["height"]))
        found = self._call(
            "Runtime.evaluate", session=session, expression=PICTURES_JS, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in found:
            raise ChromiumError(f"the picture check failed in the page: {found['exceptionDetails']}")
        pictures = found["result"]["value"]
        if png is not None:
            shot = self._call(
                "Page.captureScreenshot", session=session, format="png", captureBeyondViewport=True
            )
            Path(png).write_bytes(base64.b64decode(shot["data"]))
        pdf_pages = self._print(session, pdf) if pdf is not None else []
        requests, failed = list(dict.fromkeys(self._requests)), self._failed
        self._session = None
        self._call("Target.closeTarget", targetId=target)
        self._call("Target.disposeBrowserContext", browserContextId=context)
        return Rendered(
            images=pictures["count"],
            broken_images=[shorten(src) for src in pictures["broken"]],
            requests=[shorten(r, 200) for r in requests],
            outside_requests=[shorten(r, 200) for r in requests if not _inside(r, url)],
            pdf_pages=pdf_pages,
            png=png,
            pdf=pdf,
            failed_requests=failed,
        )

    def _print(self, session: str, pdf: Path) -> list[str]:
        """Print the page to `pdf` (A4) and return each page's text."""
        # Print as a person would: the paper decides the layout, not the screen size set above.
        self._call("Emulation.clearDeviceMetricsOverride", session=session)
        paper_w, paper_h = A4_INCHES
        printed = self._call(
            "Page.printToPDF",
            session=session,
            paperWidth=paper_w,
            paperHeight=paper_h,
            printBackground=True,
        )
        Path(pdf).write_bytes(base64.b64decode(printed["data"]))
        from pypdf import PdfReader  # only here: a test file that never prints need not have pypdf

        return [page.extract_text() for page in PdfReader(pdf).pages]

    def _view(self, session: str, width: int, height: int) -> None:
        self._call(
            "Emulation.setDeviceMetricsOverride",
            session=session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    # The protocol: commands carry an id and get an answer with it; events come in between.

    def _send(self, method: str, session: str | None = None, **params) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._write_fd, data) :]
        except BrokenPipeError:
            raise ChromiumError(f"Chromium quit before {method}{self._stderr_tail()}") from None
        return self._next_id

    def _call(self, method: str, session: str | None = None, **params) -> dict:
        wanted = self._send(method, session, **params)
        while True:
            message = self._receive(method)
            if message.get("id") == wanted:
                if "error" in message:
                    raise ChromiumError(f"{method} failed: {message['error']}{self._stderr_tail()}")
                return message["result"]

    def _wait_event(self, session: str, method: str, **params) -> None:
        def seen(event: dict) -> bool:
            given = event.get("params", {})
            return (
                event.get("sessionId") == session
                and event["method"] == method
                and params.items() <= given.items()
            )

        while not any(map(seen, self._events)):
            self._receive(f"{method} {params}")

    def _receive(self, waiting_for: str) -> dict:
        """The next message from the browser; events are recorded, and paused requests answered."""
        while (end := self._buffer.find(b"\0")) < 0:
            left = self._deadline - time.monotonic()
            if left <= 0 or not select.select([self._read_fd], [], [], left)[0]:
                raise ChromiumError(
                    f"Chromium did not answer within {self.timeout_s:.0f} s, waiting for {waiting_for}"
                    + self._stderr_tail()
                )
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise ChromiumError(f"Chromium quit while waiting for {waiting_for}{self._stderr_tail()}")
            self._buffer += chunk
        message = json.loads(self._buffer[:end])
        del self._buffer[: end + 1]
        if "method" in message:
            self._on_event(message)
        return message

    def _on_event(self, event: dict) -> None:
        self._events.append(event)
        if self._session is None or event.get("sessionId") != self._session:
            return
        method, params = event["method"], event.get("params", {})
        if method == "Network.requestWillBeSent":
            self._ids[params["requestId"]] = params["request"]["url"]
            self._requests.append(params["request"]["url"])
        elif method == "Network.loadingFailed":
            url = self._ids.get(params["requestId"], "?")
            self._failed.append(f"{shorten(url, 200)}: {params.get('errorText', '')}")
        elif method == "Fetch.requestPaused":
            # Fetch sees requests before they go; only what stays in the file may go on.
            url = params["request"]["url"]
            self._requests.append(url)
            if _inside(url, self._page_url):
                self._send("Fetch.continueRequest", self._session, requestId=params["requestId"])
            else:
                self._send(
                    "Fetch.failRequest",
                    self._session,
                    requestId=params["requestId"],
                    errorReason="BlockedByClient",
                )

    def _stderr_tail(self, lines: int = 20) -> str:
        try:
            text = Path(self._dir, "stderr").read_text(errors="replace")
        except (OSError, TypeError):
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"\n--- Chromium's stderr, last lines ---\n{tail}" if tail else ""
