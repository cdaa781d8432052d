"""The edge's route features over HTTP: query and header parameters, raw
bodies, the Kafka key, replies passed through as they are (CSV), redirects,
and Server-Sent Events streams (history then live, Last-Event-ID, until,
tenant and match filters, the bound on streams).

No product group declares such routes yet, so omnify-edge-fixture serves
the routes of fixtures/edge_fixture.json (a fixture part of group ml)
beside the real ones, with every behaviour of omnify-edge, and this module
plays group ml on Kafka with kcat: it reads the commands the edge sends,
answers them on the edge's reply partition, and publishes ml events. It
uses a topic prefix of its own, so no real ml group answers in its place.
"""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest

from conftest import (BUILD_BIN, assert_problem, default_claims, free_port, http,
                      make_jwt, wait_ready)
from mpack import mp_pack, mp_unpack
from test_auth_rbac import brokers, kcat_produce, uuid7

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "edge_fixture.json")
REPLY_PARTITION = 3


# ---------------------------------------------------------------------------
# Group ml, played by the test
# ---------------------------------------------------------------------------

class Command:
    def __init__(self, key, headers, body):
        self.key = key
        self.headers = headers
        self.body = body
        self.type = headers.get("type")
        self.id = headers.get("id")


class FakeGroup:
    """Reads <prefix>ml.commands with one long-running kcat and answers
    each command with the handler registered for its type: a function
    (Command) -> (status, body) or (status, bytes, content_type), or None
    to answer nothing."""

    def __init__(self, session, prefix):
        self.session = session
        self.prefix = prefix
        self.handlers = {}
        self.commands = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            ["kcat", "-C", "-b", brokers(session), "-t", prefix + "ml.commands",
             "-o", "beginning", "-J", "-u", "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for line in self.proc.stdout:
            try:
                rec = json.loads(line.decode("utf-8", "surrogateescape"))
            except ValueError:
                continue
            h = rec.get("headers") or []
            headers = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
            payload = (rec.get("payload") or "").encode("utf-8", "surrogateescape")
            try:
                body = mp_unpack(payload)
            except (ValueError, IndexError, UnicodeDecodeError):
                body = None
            cmd = Command(rec.get("key"), headers, body)
            with self.cond:
                self.commands.append(cmd)
                self.cond.notify_all()
            handler = self.handlers.get(cmd.type)
            answer = handler(cmd) if handler else None
            if answer is not None:
                self.reply(cmd, *answer)

    def reply(self, cmd, status, body, content_type=None):
        topic, _, part = cmd.headers["reply-to"].rpartition(":")
        headers = [("id", uuid7()), ("type", cmd.type), ("schema-version", 1),
                   ("created-at", int(time.time() * 1000)),
                   ("correlation-id", cmd.id), ("status", status)]
        if content_type:
            headers.append(("content-type", content_type))
        payload = body if isinstance(body, bytes) and content_type else mp_pack(body)
        kcat_produce(self.session, topic, payload, headers=headers, partition=int(part))

    def wait_command(self, type_, pred=lambda c: True, timeout=30.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for c in self.commands:
                    if c.type == type_ and pred(c):
                        return c
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {type_} command came")
                self.cond.wait(left)

    def commands_of(self, type_):
        with self.cond:
            return [c for c in self.commands if c.type == type_]

    def emit(self, type_, body, tenant, mid=None):
        """Publish an ml event as the group would."""
        mid = mid or uuid7()
        kcat_produce(self.session, self.prefix + "ml.events", mp_pack(body),
                     key=body.get("run_id", mid),
                     headers=[("id", mid), ("type", type_), ("schema-version", 1),
                              ("created-at", int(time.time() * 1000)),
                              ("tenant", tenant)])
        return mid

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(module_procs, session):
    prefix = f"it{session.tag}er."
    binary = os.path.join(session.tmpdir, "bin", "omnify-edge-fixture")
    shutil.copy2(os.path.join(BUILD_BIN, "omnify-edge-fixture"), binary)
    r = session.run([os.path.join(session.tmpdir, "bin", "omnify"), "topics", "apply"],
                    timeout=120, OMNIFY_TOPIC_PREFIX=prefix)
    assert r.returncode == 0, f"topics apply for {prefix}: {r.stdout}\n{r.stderr}"
    group = FakeGroup(session, prefix)

    def start(name, **overrides):
        port = free_port()
        p = module_procs.start(name, [binary, FIXTURE], None,
                               OMNIFY_TOPIC_PREFIX=prefix, OMNIFY_HTTP_PORT=port,
                               OMNIFY_HTTP_BIND="127.0.0.1",
                               OMNIFY_EDGE_REPLY_PARTITION=REPLY_PARTITION,
                               OMNIFY_MAX_BODY_BYTES=4096, **overrides)
        p.url = f"http://127.0.0.1:{port}"
        wait_ready(p, p.url + "/ready")
        return p

    edge = start("fixture-edge")
    yield {"edge": edge, "group": group, "start": start, "session": session}
    group.stop()
    for proc in module_procs.procs:
        proc.stop()
    session.run([os.path.join(session.tmpdir, "bin", "omnify"), "topics", "delete", prefix],
                timeout=60, OMNIFY_TOPIC_PREFIX=prefix)


def token(session, tenant=None, sub=None):
    return make_jwt(session.jwt_secret, default_claims(tid=tenant, sub=sub))


def bearer(t):
    return {"Authorization": "Bearer " + t}


# ---------------------------------------------------------------------------
# Parameters, the key
# ---------------------------------------------------------------------------

def test_query_header_path_and_body_make_one_command(world):
    edge, group, s = world["edge"], world["group"], world["session"]
    group.handlers["ml.fixture.echo"] = lambda c: (200, {"echo": c.body})
    item = "item-" + uuid.uuid4().hex[:8]
    r = http("POST", f"{edge.url}/api/ml/fixture/echo/{item}?limit=5&tags=a&tags=b%20c&verbose=true",
             json_body={"note": "hi"},
             headers=dict(bearer(token(s)), **{"x-fixture-sig": "sha256=abc"}))
    assert r.status == 200, r
    want = {"item": item, "limit": 5, "tags": ["a", "b c"], "verbose": True,
            "sig": "sha256=abc", "note": "hi"}
    assert r.body == {"echo": want}, r
    cmd = group.wait_command("ml.fixture.echo", lambda c: c.body.get("item") == item)
    assert cmd.body == want
    # The route's key field keys the record: one item's commands in order.
    assert cmd.key == item


def test_query_default_and_comma_list(world):
    edge, group, s = world["edge"], world["group"], world["session"]
    group.handlers["ml.fixture.echo"] = lambda c: (200, {"echo": c.body})
    r = http("POST", f"{edge.url}/api/ml/fixture/echo/x1?tags=a,b",
             json_body={}, headers=bearer(token(s)))
    assert r.status == 200, r
    assert r.body["echo"]["limit"] == 10  # the declared default
    assert r.body["echo"]["tags"] == ["a", "b"]
    assert "verbose" not in r.body["echo"] and "sig" not in r.body["echo"]


@pytest.mark.parametrize("query,field", [
    ("limit=abc", "limit"),
    ("limit=0", "limit"),           # below its minimum
    ("limit=1.5", "limit"),
    ("limit=1&limit=2", "limit"),   # a scalar given twice
    ("verbose=maybe", "verbose"),
    ("nosuch=1", "nosuch"),         # not a parameter of the route
    ("tags=a,b,c,d,e,f", "tags"),   # more items than allowed
])
def test_bad_query_parameter_is_named(world, query, field):
    edge, s = world["edge"], world["session"]
    before = len(world["group"].commands)
    r = http("POST", f"{edge.url}/api/ml/fixture/echo/x2?{query}", json_body={},
             headers=bearer(token(s)))
    body = assert_problem(r, 400)
    assert field in {e["field"] for e in body["errors"]}, r
    time.sleep(0.3)
    assert len(world["group"].commands) == before, "a refused request reached Kafka"


def test_field_of_the_query_refused_in_the_body(world):
    r = http("POST", f"{world['edge'].url}/api/ml/fixture/echo/x3", json_body={"limit": 3},
             headers=bearer(token(world["session"])))
    body = assert_problem(r, 400)
    assert "limit" in {e["field"] for e in body["errors"]}, r


# ---------------------------------------------------------------------------
# Raw bodies
# ---------------------------------------------------------------------------

def test_raw_body_passed_as_its_bytes(world):
    edge, group = world["edge"], world["group"]
    group.handlers["ml.fixture.hook"] = lambda c: (200, {"received": len(c.body["payload"])})
    raw = b"\x00\xff{not json at all\r\n" + os.urandom(64)
    sig = "t=" + uuid.uuid4().hex
    r = http("POST", edge.url + "/api/ml/fixture/hook", body=raw,
             headers={"Content-Type": "application/x-www-form-urlencoded",
                      "X-Fixture-Sig": sig})
    assert r.status == 200, r
    assert r.body == {"received": len(raw)}
    cmd = group.wait_command("ml.fixture.hook", lambda c: c.body.get("sig") == sig)
    assert cmd.body["payload"] == raw
    assert set(cmd.body) == {"payload", "sig"}


def test_raw_body_without_content_type_and_its_limits(world):
    edge = world["edge"]
    # No JSON check and no 415, whatever (or whether) the type is given ...
    r = http("POST", edge.url + "/api/ml/fixture/hook", body=b"abc")
    body = assert_problem(r, 400)  # ... but the declared header is required
    assert "X-Fixture-Sig" in {e["field"] for e in body["errors"]}, r
    # The size limit still holds (4096 for this edge).
    r = http("POST", edge.url + "/api/ml/fixture/hook", body=b"x" * 5000,
             headers={"Content-Type": "text/plain", "X-Fixture-Sig": "s"})
    assert_problem(r, 413)


def test_json_route_still_refuses_other_media_types(world):
    r = http("POST", f"{world['edge'].url}/api/ml/fixture/echo/x4", body=b"a=b",
             headers=dict(bearer(token(world["session"])),
                          **{"Content-Type": "application/x-www-form-urlencoded"}))
    assert_problem(r, 415)


# ---------------------------------------------------------------------------
# Replies as they are, redirects
# ---------------------------------------------------------------------------

def report(cmd):
    if "text/csv" in (cmd.body.get("accept") or ""):
        return 200, b"day,spend\n2026-12-01,12.50\n", "text/csv; charset=utf-8"
    return 200, {"rows": [{"day": "2026-12-01", "spend": 12.5}]}


def test_reply_passed_through_as_csv(world):
    edge, group, s = world["edge"], world["group"], world["session"]
    group.handlers["ml.fixture.report"] = report
    r = http("GET", edge.url + "/api/ml/fixture/report",
             headers=dict(bearer(token(s)), Accept="text/csv"))
    assert r.status == 200, r
    assert r.header("Content-Type") == "text/csv; charset=utf-8", r
    assert r.raw == b"day,spend\n2026-12-01,12.50\n"
    r = http("GET", edge.url + "/api/ml/fixture/report",
             headers=dict(bearer(token(s)), Accept="application/json"))
    assert r.status == 200 and r.content_type.startswith("application/json"), r
    assert r.body == {"rows": [{"day": "2026-12-01", "spend": 12.5}]}


def test_redirect_answered_with_location(world):
    edge, group = world["edge"], world["group"]

    def callback(cmd):
        if cmd.body["code"] == "bad":
            return 302, {"location": "https://app.example.com/x\r\nSet-Cookie: a=b"}
        return 302, {"location": f"https://app.example.com/done?code={cmd.body['code']}"}

    group.handlers["ml.fixture.callback"] = callback
    r = http("GET", edge.url + "/api/ml/fixture/callback?code=abc123")
    assert r.status == 302, r
    assert r.header("Location") == "https://app.example.com/done?code=abc123"
    assert r.raw == b""
    # A location that would split the headers is the group's bug: 502.
    r = http("GET", edge.url + "/api/ml/fixture/callback?code=bad")
    assert_problem(r, 502)
    assert r.header("Set-Cookie") is None


def test_asyncapi_document(world):
    r = http("GET", world["edge"].url + "/asyncapi.json")
    assert r.status == 200, r
    assert r.body["asyncapi"].startswith("3."), r
    assert "ml.fixture_run.stepped" in r.raw.decode()


# ---------------------------------------------------------------------------
# Server-Sent Events
# ---------------------------------------------------------------------------

class SSE:
    """A stream read as a client would: frames as dicts (id, event, data
    parsed as JSON), comments skipped."""

    def __init__(self, url, headers, timeout=20.0):
        host, _, rest = url[len("http://"):].partition("/")
        h, _, port = host.partition(":")
        self.sock = socket.create_connection((h, int(port)), timeout=timeout)
        lines = [f"GET /{rest} HTTP/1.1", f"Host: {host}", "Accept: text/event-stream",
                 "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        status_line, *hdrs = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in hdrs)}
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self.text = ""
        self.closed = False
        if self.status != 200:
            self.body = self._rest()

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def _until(self, sep):
        while sep not in self.buf:
            self._recv()
        out, _, self.buf = self.buf.partition(sep)
        return out

    def _rest(self):
        try:
            while True:
                self._recv()
        except (EOFError, socket.timeout):
            return self.buf

    def _more(self):
        """Append the next piece of the body to self.text."""
        if not self.chunked:
            self._recv()
            self.text += self.buf.decode()
            self.buf = b""
            return
        size = int(self._until(b"\r\n").split(b";")[0], 16)
        if size == 0:
            self.closed = True
            raise EOFError
        while len(self.buf) < size + 2:
            self._recv()
        self.text += self.buf[:size].decode()
        self.buf = self.buf[size + 2:]

    def next(self):
        """The next event, or None when the stream ended."""
        while True:
            while "\n\n" not in self.text:
                try:
                    self._more()
                except EOFError:
                    return None
            frame, _, self.text = self.text.partition("\n\n")
            ev = {}
            for line in frame.split("\n"):
                if line.startswith(":"):
                    continue
                k, _, v = line.partition(": ")
                if k == "data":
                    ev["data"] = ev.get("data", "") + v
                elif k:
                    ev[k] = v
            if ev:
                if "data" in ev:
                    ev["data"] = json.loads(ev["data"])
                return ev

    def close(self):
        self.sock.close()


def history_of(events):
    return lambda c: (200, {"events": events, "done": False})


def test_stream_history_then_live_until_the_end(world):
    edge, group, s = world["edge"], world["group"], world["session"]
    tenant, run = str(uuid.uuid4()), "run-" + uuid.uuid4().hex[:8]
    h1, e1, e2, e3 = uuid7(), uuid7(), uuid7(), uuid7()

    def history(cmd):
        # Live events the group publishes while the history is on its way:
        # one the history has (sent once), one it has not (after it).
        group.emit("ml.fixture_run.stepped", {"run_id": run, "n": 1}, tenant, mid=h1)
        group.emit("ml.fixture_run.stepped", {"run_id": run, "n": 2}, tenant, mid=e1)
        time.sleep(0.5)
        return 200, {"events": [{"id": h1, "type": "ml.fixture_run.stepped",
                                 "data": {"run_id": run, "n": 1}}], "done": False}

    group.handlers["ml.fixture.history"] = history
    sse = SSE(f"{edge.url}/api/ml/fixture/runs/{run}/events", bearer(token(s, tenant=tenant)))
    try:
        assert sse.status == 200, sse.body
        assert sse.headers["content-type"] == "text/event-stream"
        first = sse.next()
        assert (first["id"], first["event"], first["data"]) == \
            (h1, "ml.fixture_run.stepped", {"run_id": run, "n": 1})
        second = sse.next()
        assert second["id"] == e1 and second["data"]["n"] == 2
        cmd = group.wait_command("ml.fixture.history", lambda c: c.body["run_id"] == run)
        assert cmd.body == {"run_id": run, "after": ""}
        assert cmd.headers["tenant"] == tenant
        # Live: other tenants and other runs are not this stream's.
        group.emit("ml.fixture_run.stepped", {"run_id": run, "n": 99}, str(uuid.uuid4()))
        group.emit("ml.fixture_run.stepped", {"run_id": "other", "n": 98}, tenant)
        group.emit("ml.fixture_run.stepped", {"run_id": run, "n": 3}, tenant, mid=e2)
        group.emit("ml.fixture_run.finished", {"run_id": run}, tenant, mid=e3)
        group.emit("ml.fixture_run.stepped", {"run_id": run, "n": 4}, tenant)
        third = sse.next()
        assert third["id"] == e2 and third["data"]["n"] == 3
        last = sse.next()
        assert last["id"] == e3 and last["event"] == "ml.fixture_run.finished"
        # until: the stream ends after it.
        assert sse.next() is None
    finally:
        sse.close()


def test_stream_resumes_after_last_event_id(world):
    edge, group, s = world["edge"], world["group"], world["session"]
    tenant, run = str(uuid.uuid4()), "run-" + uuid.uuid4().hex[:8]
    seen = uuid7()
    group.handlers["ml.fixture.history"] = lambda c: (200, {"events": [], "done": True})
    sse = SSE(f"{edge.url}/api/ml/fixture/runs/{run}/events",
              dict(bearer(token(s, tenant=tenant)), **{"Last-Event-ID": seen}))
    try:
        assert sse.status == 200
        # The history says the run is over: nothing more comes.
        assert sse.next() is None
    finally:
        sse.close()
    cmd = group.wait_command("ml.fixture.history", lambda c: c.body["run_id"] == run)
    assert cmd.body["after"] == seen


def test_stream_history_refused_passes_the_problem(world):
    edge, group, s = world["edge"], world["group"], world["session"]
    group.handlers["ml.fixture.history"] = lambda c: (
        404, {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no such run"})
    r = http("GET", f"{edge.url}/api/ml/fixture/runs/nosuch/events", headers=bearer(token(s)))
    body = assert_problem(r, 404)
    assert body["detail"] == "no such run"


def test_stream_needs_a_token(world):
    assert_problem(http("GET", f"{world['edge'].url}/api/ml/fixture/live"), 401)


def test_live_stream_of_a_tenant(world):
    edge, group, s = world["edge"], world["group"], world["session"]
    tenant = str(uuid.uuid4())
    sse = SSE(f"{edge.url}/api/ml/fixture/live", bearer(token(s, tenant=tenant)))
    try:
        assert sse.status == 200
        time.sleep(0.5)  # the reader follows from now on
        group.emit("ml.fixture_run.stepped", {"run_id": "a", "n": 1}, str(uuid.uuid4()))
        mine = group.emit("ml.fixture_run.stepped", {"run_id": "b", "n": 2}, tenant)
        ev = sse.next()
        assert ev["id"] == mine and ev["data"] == {"run_id": "b", "n": 2}
    finally:
        sse.close()


def test_streams_bounded_per_edge(world):
    edge = world["start"]("fixture-edge-bounded", OMNIFY_MAX_STREAMS=1)
    s = world["session"]
    first = SSE(f"{edge.url}/api/ml/fixture/live", bearer(token(s)))
    try:
        assert first.status == 200
        r = http("GET", f"{edge.url}/api/ml/fixture/live", headers=bearer(token(s)))
        assert_problem(r, 503)
        assert r.header("Retry-After")
    finally:
        first.close()
    # The closed stream's slot comes back once the edge notices the client
    # left (it looks every second), not two heartbeats (30 s) later.
    deadline = time.monotonic() + 5
    while True:
        second = SSE(f"{edge.url}/api/ml/fixture/live", bearer(token(s)), timeout=5)
        status = second.status
        second.close()
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200
    assert edge.stop() == 0
