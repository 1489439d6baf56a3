"""Open every page of the built site in headless Chromium and check what a reader would see.

    python scripts/build_site.py && python scripts/check_site.py           # every page of _site/
    python scripts/check_site.py --screenshot 04-pl-from-the-ntk.html shot.png   # a picture of a page's first formula

For each page: no console error, no uncaught exception and no failed load
(Chromium's log), every image loaded (``naturalWidth > 0``), every ``<math>``
element laid out as MathML (computed ``display`` is ``math`` or ``block math``)
with a non-empty box, every fraction's numerator above its denominator, and
no raw TeX in the text outside code (no ``$``, no ``\\frac`` or other
``\\command``). Closed ``<details>`` are opened first, so answers are checked too.

Chromium is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file
descriptors 3 and 4), so nothing but the standard library is needed and no
port is opened. Exit status 0 all pages pass, 1 a page failed, 3 no Chromium.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--no-default-browser-check", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe")


def find_chromium() -> str | None:
    """The first Chromium on PATH (``MINILPLR_CHROMIUM`` overrides), or None."""
    env = os.environ.get("MINILPLR_CHROMIUM")
    if env:
        return env if shutil.which(env) else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """One headless Chromium and one tab, spoken to over the DevTools pipe."""

    def __init__(self, executable: str, timeout: float = 30.0, width: int = 1000, height: int = 800):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="minilplr-chromium-")
        to_child_r, self._w = os.pipe()  # we write commands, Chromium reads them on fd 3
        self._r, from_child_w = os.pipe()  # Chromium writes on fd 4, we read

        def fds():  # in the child, before exec: put the two ends on 3 and 4, where Chromium looks for them
            r, w = os.dup(to_child_r), os.dup(from_child_w)  # first out of the way: either may already be 3 or 4
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={self.profile}",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=fds, pass_fds=(3, 4))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    # -- the protocol
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError(f"chromium: no answer within {self.timeout:.0f} s")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium: the browser closed the pipe (it exited)")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Send one command and wait for its answer, keeping the events that arrive meanwhile."""
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"chromium: {method}: {m['error'].get('message')}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == method:
                    return self.events.pop(i)
            m = self._read_message(deadline)
            if "method" in m:
                self.events.append(m)

    def evaluate(self, expression: str):
        res = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"chromium: evaluating the probe failed: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    # -- a page
    def open(self, path: Path) -> list[str]:
        """Load ``path``; -> the console errors, exceptions and failed loads it caused."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.evaluate("document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r(1))))")
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                errors.append("exception: " + d.get("exception", {}).get("description", d.get("text", "?")))
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                            for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
        return errors

    def screenshot(self, out: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        out.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


#: runs in the page after it loaded: what a reader would see, as JSON
PROBE = r"""
(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const images = [...document.images].map(i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}));
  const maths = [...document.querySelectorAll('math')];
  const badMath = maths.filter(m => {
    const r = m.getBoundingClientRect();
    return !getComputedStyle(m).display.includes('math') || r.width <= 0 || r.height <= 0;
  }).map(m => m.textContent.slice(0, 60));
  const badFrac = [...document.querySelectorAll('mfrac')].filter(f => {
    const [num, den] = f.children;
    return !(num && den && num.getBoundingClientRect().bottom <= den.getBoundingClientRect().top + 1);
  }).map(f => f.textContent.slice(0, 60));
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, code, math, script, style')) continue;
    const m = n.nodeValue.match(/\$|\\[A-Za-z]+/);
    if (m) raw.push(n.nodeValue.slice(Math.max(0, m.index - 30), m.index + 30));
  }
  return {images, nMath: maths.length, badMath, nFrac: document.querySelectorAll('mfrac').length, badFrac, raw,
          title: document.title};
})()
"""


@dataclass
class PageReport:
    page: str
    errors: list = field(default_factory=list)  # console errors, exceptions, failed loads
    broken_images: list = field(default_factory=list)
    raw_tex: list = field(default_factory=list)
    bad_math: list = field(default_factory=list)
    bad_fractions: list = field(default_factory=list)
    n_images: int = 0
    n_math: int = 0
    n_fractions: int = 0

    @property
    def ok(self) -> bool:
        return not (self.errors or self.broken_images or self.raw_tex or self.bad_math or self.bad_fractions)

    def line(self) -> str:
        head = (f"{self.page}: {self.n_math} formulas ({self.n_fractions} fractions), {self.n_images} images")
        if self.ok:
            return head + ": ok"
        parts = [f"{k.replace('_', ' ')}: {v}" for k, v in
                 (("errors", self.errors), ("broken_images", self.broken_images), ("raw_tex", self.raw_tex),
                  ("bad_math", self.bad_math), ("bad_fractions", self.bad_fractions)) if v]
        return head + ": FAIL " + "; ".join(parts)


def check_page(browser: Browser, site: Path, page: Path) -> PageReport:
    errors = browser.open(page)
    probe = browser.evaluate(PROBE)
    return PageReport(page.relative_to(site).as_posix(), errors,
                      [i["src"] for i in probe["images"] if not i["ok"]], probe["raw"], probe["badMath"],
                      probe["badFrac"], len(probe["images"]), probe["nMath"], probe["nFrac"])


def check_site(site: Path, executable: str) -> list[PageReport]:
    """Every ``.html`` page under ``site``, in one browser."""
    with Browser(executable) as b:
        return [check_page(b, site, p) for p in sorted(site.rglob("*.html"))]


def screenshot(site: Path, page: str, out: Path, executable: str) -> None:
    """A 1000 × 800 picture of ``page``, scrolled to its first displayed formula (else its top)."""
    with Browser(executable) as b:
        b.open(site / page)
        b.evaluate("(() => { const m = document.querySelector('math[display=block]');"
                   " if (m) { m.scrollIntoView({block: 'center'}); } return 1; })()")
        b.evaluate("new Promise(r => requestAnimationFrame(() => r(1)))")
        b.screenshot(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", type=Path, default=ROOT / "_site", help="the built site (default: _site/)")
    ap.add_argument("--screenshot", nargs=2, metavar=("PAGE", "PNG"), help="save a picture of one page instead")
    args = ap.parse_args(argv)
    exe = find_chromium()
    if exe is None:
        print("check_site: no Chromium found (apt-get install chromium)", file=sys.stderr)
        return 3
    if not (args.site / "index.html").exists():
        print(f"check_site: {args.site} has no index.html; run python scripts/build_site.py", file=sys.stderr)
        return 1
    if args.screenshot:
        screenshot(args.site, args.screenshot[0], Path(args.screenshot[1]), exe)
        print(f"wrote {args.screenshot[1]}")
        return 0
    reports = check_site(args.site, exe)
    for r in reports:
        print(r.line())
    bad = [r for r in reports if not r.ok]
    print(f"{len(reports) - len(bad)} of {len(reports)} pages pass")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
