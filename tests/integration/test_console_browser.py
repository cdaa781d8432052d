"""The operations console in a real browser: headless Chromium (Debian's
chromium and chromium-driver, installed by compose/local/deps) driven over
the WebDriver protocol with the standard library. It signs in through the
auth API, sees all seven groups with their processes, sees ml's lag rise
while ml is stopped and fall when it returns, and a dead letter appear. The
screenshots are saved under build/test-output/ (console-lag.png,
console.png)."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import GROUPS, REPO, free_port, http, login, signup, wait_all_status
from infra_helpers import get, produce_command, token, until

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
OUT = os.path.join(REPO, "build", "test-output")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="chromium and chromium-driver are not installed (compose/local/deps)")


class Browser:
    """A WebDriver session on a chromedriver of its own."""

    def __init__(self):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="omnify-chromium-")
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}"],
                                       stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        until(lambda: self._try("GET", "/status"), timeout=30, what="chromedriver up")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                "--window-size=1400,1050"]}}}}
        self.sid = self.call("POST", "/session", caps)["sessionId"]

    def _try(self, method, path, body=None):
        try:
            return self.call(method, path, body)
        except OSError:
            return None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            out = json.loads(r.read() or b"{}")
        return out.get("value", out) if path != "/session" else out["value"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.sid}{path}", body)

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def find(self, css):
        return self.s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css, text):
        self.s("POST", f"/element/{self.find(css)}/value", {"text": text})

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, name):
        os.makedirs(OUT, exist_ok=True)
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))
        print(f"\nscreenshot: {path}")
        return path

    def close(self):
        try:
            self.s("DELETE", "")
        except OSError:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


DLQ = """const c = document.querySelector('#dlq tr[data-group="auth"] .count');
return c ? Number(c.textContent.replace(/,/g, "")) || 0 : 0;"""


def by_group(groups):
    return {g["group"]: g["processes"] for g in groups}


LAG = """const r = document.querySelector(`#groups tr[data-group="${arguments[0]}"] .lag`);
return r ? Number(r.dataset.lag) : null;"""


def test_console_in_a_browser(procs, session, browser):
    env = {"OMNIFY_INFRA_SAMPLE_S": "2", "OMNIFY_INFRA_WINDOW": "3"}
    mono = procs.start_monolith(["--except", "ml"], env=env)
    ml = procs.start_group("ml", env=env)
    wait_all_status(mono.url)
    email, r = signup(mono.url)
    assert r.status == 201, r
    gid = f"{session.topic_prefix}ml"

    browser.go(mono.url + "/console")
    browser.type("#login-email", email)
    browser.type("#login-password", "correct horse battery")
    browser.click("#login-submit")
    until(lambda: browser.js("return document.querySelector('#stream-state').dataset.state") == "live",
          timeout=60, what="the stream live")
    # Seven groups, each with this system's process (in a full run the
    # session's database also lists earlier modules' processes: wait for
    # this system's own heartbeats to reach the page).
    groups = until(lambda: (lambda g: g if len(g) == 7 and all(x["processes"] for x in g) and
                            ml.pid in by_group(g).get("ml", []) and
                            mono.pid in by_group(g).get("auth", [])
                            else None)(
        browser.js("""return [...document.querySelectorAll('#topology .group')].map(g => ({
            group: g.dataset.group, processes: [...g.querySelectorAll('.process')].map(p => Number(p.dataset.pid))}));""")),
        timeout=60, what="seven groups with this system's processes")
    by = by_group(groups)
    assert set(by) == set(GROUPS)
    assert all(mono.pid in by[g] for g in GROUPS if g != "ml"), by
    # The monolith's HTTP edge, from its own heartbeat.
    until(lambda: browser.js("""return [...document.querySelectorAll(
        '#topology .group-edge .process')].map(p => Number(p.dataset.pid));""").count(mono.pid),
          timeout=30, what="the monolith's edge shown")

    # ml stopped: its lag rises in the page.
    assert ml.stop() == 0
    admin = token(session)
    until(lambda: any(g["id"] == gid and g["members"] == [] for g in
                      get(mono.url, admin, "/api/infrastructure/groups").body["groups"]),
          timeout=60, what="ml without members")
    for _ in range(25):
        assert http("GET", mono.url + "/api/ml/status",
                    headers={"Prefer": "respond-async"}).status == 202
    try:
        until(lambda: (browser.js(LAG, gid) or 0) >= 20, timeout=60, what="ml's lag shown rising")
    except AssertionError:
        browser.screenshot("console-failed.png")
        print(json.dumps(get(mono.url, admin, f"/api/infrastructure/groups/{gid}").body)[:4000])
        print(browser.js("return document.querySelector('#stream-state').textContent"))
        raise
    until(lambda: browser.js(f"""return document.querySelector('#groups tr[data-group="{gid}"]').dataset.status""") == "STOP",
          timeout=30, what="ml shown STOP")
    browser.screenshot("console-lag.png")
    # The dependencies, each by its name (kafka and the store are always
    # probed).
    deps = until(lambda: (lambda d: d if {"kafka", "store"} <= set(d) else None)(
        browser.js("""return Object.fromEntries([...document.querySelectorAll('#deps tbody tr')].map(
            r => [r.cells[0].textContent, r.cells[1].textContent]));""")),
        timeout=30, what="kafka and the store among the dependencies")
    assert deps["kafka"] == "up" and deps["store"] == "up", deps

    # ml back: the lag falls.
    procs.start_group("ml", env=env)
    until(lambda: browser.js(LAG, gid) == 0, timeout=90, what="ml's lag back to 0")

    # A dead letter appears (one more than the page showed: earlier modules
    # of a full run may have left some).
    before = browser.js(DLQ)
    produce_command(session, f"{session.topic_prefix}auth.commands", "auth.no_such_command", {"x": 1})
    until(lambda: browser.js(DLQ) >= before + 1, timeout=60, what="a dead letter shown")
    assert browser.js("return document.querySelector('#stream-state').dataset.state") == "live"
    browser.screenshot("console.png")
    # The token stayed in memory.
    assert browser.js("return window.localStorage.length + window.sessionStorage.length + document.cookie.length") == 0
