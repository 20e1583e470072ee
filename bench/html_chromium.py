"""Headless Chromium driven over the DevTools protocol, with no package beyond the standard library.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol commands from file
descriptor 3 and writes replies and events to descriptor 4, each message one JSON object ended
by a NUL byte. That is all a test or a benchmark needs to open a page, wait for its script, run
JavaScript in it, press keys and take screenshots, without a websocket client.

    with Chromium() as browser:
        page = browser.open("file:///tmp/t.html")
        page.wait_for("document.body.dataset.rendered === 'ok'")
        print(page.evaluate("document.title"))
        page.screenshot(Path("shot.png"))

Used by bench/html_scale.py and tests/transcript/test_html_*.py.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")

_SWITCHES = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
]


class BrowserError(Exception):
    """Chromium is missing, died, answered a command with an error, or did not answer in time."""


class Chromium:
    """One headless Chromium process with a fresh profile; a context manager."""

    def __init__(
        self,
        *,
        width: int = 1400,
        height: int = 900,
        timeout: float = 60.0,
        javascript: bool = True,
    ) -> None:
        if not CHROMIUM.exists():
            raise BrowserError(
                f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
            )
        self.timeout = timeout
        self.javascript = javascript
        self.width, self.height = width, height
        self._tmp = Path(tempfile.mkdtemp(prefix="supsim-chromium-"))
        home = self._tmp / "home"
        home.mkdir()
        env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
        }
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire() -> None:  # in the child, before exec: the pipes become fds 3 and 4
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._stderr = open(self._tmp / "stderr.log", "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                *_SWITCHES,
                f"--user-data-dir={self._tmp / 'profile'}",
                f"--window-size={width},{height}",
                "--enable-logging=stderr",
                "--v=0",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
            cwd=self._tmp,
            preexec_fn=wire,  # pipes to fds 3 and 4 (async-signal-safe dup2 only)
            close_fds=False,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # --- the pipe --------------------------------------------------------------------------------

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and wait for its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data) :]
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(
        self, method: str, *, session: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """The first event named ``method`` (already received or still to come)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, event in enumerate(self._events):
                if event["method"] == method and (
                    session is None or event.get("sessionId") == session
                ):
                    return self._events.pop(i)
            message = self._receive(deadline)
            if "method" in message:
                self._events.append(message)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time" + self._tail())
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed its DevTools pipe" + self._tail())
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        result: dict[str, Any] = json.loads(message)
        return result

    def _tail(self) -> str:
        self._stderr.flush()
        text = (self._tmp / "stderr.log").read_text(errors="replace")
        return f" (exit {self.proc.poll()}); its stderr ends:\n{text[-3000:]}"

    def stderr(self) -> str:
        """Everything Chromium wrote on stderr so far (console messages of the pages included)."""
        self._stderr.flush()
        return (self._tmp / "stderr.log").read_text(errors="replace")

    # --- pages -----------------------------------------------------------------------------------

    def open(self, url: str) -> Page:
        """A new tab showing ``url``, attached, with page and runtime events on."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session, target)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Log.enable")
        if not self.javascript:
            page.send("Emulation.setScriptExecutionDisabled", {"value": True})
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        page.navigate(url)
        return page

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("Browser.close", timeout=10)
            except (BrowserError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        self._stderr.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab of a ``Chromium``."""

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self.browser, self.session, self.target = browser, session, target

    def send(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def navigate(self, url: str) -> float:
        """Load ``url`` and wait for its load event; returns the seconds that took."""
        started = time.perf_counter()
        self.browser._events = [
            e for e in self.browser._events if e["method"] != "Page.loadEventFired"
        ]
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", session=self.session)
        return time.perf_counter() - started

    def close(self) -> None:
        """Close the tab."""
        self.browser.send("Target.closeTarget", {"targetId": self.target})

    def resize(self, width: int, height: int) -> None:
        """Give the page another viewport size."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def console(self) -> list[str]:
        """What the page wrote on its console, its uncaught errors, and the browser's own
        complaints about it (a refused resource, a CSP violation), one line each, so far."""
        self.evaluate("1")  # whatever the page logged before this is now received
        lines = []
        for event in self.browser._events:
            if event.get("sessionId") != self.session:
                continue
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled":
                args = " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
                )
                lines.append(f"console.{params.get('type')}: {args}")
            elif event["method"] == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or ""
                lines.append(f"{details.get('text', 'Uncaught')}: {text}")
            elif event["method"] == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") in ("error", "warning"):
                    lines.append(f"{entry.get('source')} {entry.get('level')}: {entry.get('text')}")
        return lines

    def evaluate(self, expression: str, *, timeout: float | None = None) -> Any:
        """The value of a JavaScript expression (a promise is awaited); a thrown error raises."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error in {expression[:200]!r}: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, *, timeout: float | None = None) -> Any:
        """Wait until a JavaScript expression is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.browser.timeout)
        while True:
            value = self.evaluate(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"still false after {timeout or self.browser.timeout}s: {condition}"
                )
            time.sleep(0.02)

    def key(self, key: str, *, code: str | None = None, modifiers: int = 0) -> None:
        """Press and release one key (``"n"``, ``"Enter"``, ``"Escape"``, ``"/"``) as a user
        would: through the browser's input pipeline, to the focused element."""
        text = key if len(key) == 1 else ("\r" if key == "Enter" else "")
        names = {
            "Enter": 13,
            "Escape": 27,
            "Tab": 9,
            "ArrowDown": 40,
            "ArrowUp": 38,
            "PageDown": 34,
            "PageUp": 33,
            "End": 35,
            "Home": 36,
            "F3": 114,
        }
        vk = names.get(key, ord(key.upper()) if len(key) == 1 else 0)
        base = {
            "key": key,
            "code": code or _code(key),
            "modifiers": modifiers,
            "windowsVirtualKeyCode": vk,
            "nativeVirtualKeyCode": vk,
        }
        down = {**base, "type": "keyDown" if text else "rawKeyDown"}
        if text:
            down["text"] = text
        self.send("Input.dispatchKeyEvent", down)
        self.send("Input.dispatchKeyEvent", {**base, "type": "keyUp"})

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused element (one input event per character)."""
        for char in text:
            self.send("Input.insertText", {"text": char})

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the first element matching ``selector``."""
        box = self.evaluate(
            f"(function(){{var r=document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect();return [r.left+r.width/2,r.top+r.height/2];})()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport, written to ``path``."""
        if self.browser.javascript:
            # Two animation frames, so that what the page drew last is on the screen.
            self.evaluate(
                "new Promise(function(r){requestAnimationFrame(function(){"
                "requestAnimationFrame(function(){r(true);});});})"
            )
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def _code(key: str) -> str:
    if len(key) == 1 and key.isalpha():
        return "Key" + key.upper()
    if len(key) == 1 and key.isdigit():
        return "Digit" + key
    return {"/": "Slash", " ": "Space", "?": "Slash"}.get(key, key)


@contextmanager
def chromium(**kw: Any) -> Iterator[Chromium]:
    browser = Chromium(**kw)
    try:
        yield browser
    finally:
        browser.close()
