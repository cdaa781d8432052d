"""Agentkit's durable workflows over HTTP, against the real broker and store:
every step kind, retries and final failure, cancel, pause and resume,
approvals and signals, re-run from a step, versions, idempotent starts,
definitions refused with every problem named, tenants and roles.

The processes: an edge, omnify-agentkit, omnify-ml (the target of command
steps: its status command) and, in this process, the provider stand-ins
(the LLM) and a small HTTP server that plays the target of http steps
(it records each request with its Idempotency-Key and can fail on demand).
Tokens are signed here with the session's secret (tenants and roles as the
tests need them).
"""

import http.server as httpserver
import json
import os
import socketserver
import sys
import threading
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "providers"))

from conftest import assert_problem, default_claims, http, make_jwt, wait_status  # noqa: E402
from standin.client import Standin  # noqa: E402

TERMINAL = ("completed", "failed", "cancelled")


# ---------------------------------------------------------------------------
# A target for http steps
# ---------------------------------------------------------------------------

class Target:
    """An HTTP server that answers every request with JSON and records it.
    fail(path, status, times) makes the next `times` requests to path answer
    `status`; calls(path) lists what came (method, Idempotency-Key, body)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.failures = {}
        target = self

        class Handler(httpserver.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                path = self.path.split("?")[0]
                with target.lock:
                    target.requests.append({
                        "method": self.command, "path": path,
                        "key": self.headers.get("Idempotency-Key"),
                        "body": json.loads(raw) if raw else None,
                        "headers": dict(self.headers), "at": time.time()})
                    left = target.failures.get(path)
                    status = 200
                    if left and left[1] != 0:
                        status = left[0]
                        target.failures[path] = (left[0], left[1] - 1)
                body = json.dumps({"path": path, "method": self.command,
                                   "echo": json.loads(raw) if raw else None}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        class Server(socketserver.ThreadingMixIn, httpserver.HTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client killed mid-request (the fault test)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def fail(self, path, status, times=-1):
        with self.lock:
            self.failures[path] = (status, times)

    def heal(self, path):
        with self.lock:
            self.failures.pop(path, None)

    def calls(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def stop(self):
        self.server.shutdown()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

class Client:
    """Requests as one user of one tenant."""

    def __init__(self, url, secret, tenant=None, role="owner", user=None):
        self.url = url
        self.tenant = tenant or str(uuid.uuid4())
        self.user = user or str(uuid.uuid4())
        self.role = role
        self.token = make_jwt(secret, default_claims(sub=self.user, tid=self.tenant,
                                                     roles=(role,)))

    def as_role(self, secret, role):
        return Client(self.url, secret, tenant=self.tenant, role=role)

    def call(self, method, path, body=None, headers=None, timeout=30.0):
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        return http(method, self.url + path, json_body=body, headers=h, timeout=timeout)

    def put_workflow(self, wid, steps, **extra):
        r = self.call("PUT", f"/api/workflows/{wid}", dict(extra, steps=steps))
        assert r.status == 200, r
        return r.body

    def start(self, wid, input=None, headers=None, **extra):
        """Start a run; wait for its operation; the run id."""
        body = dict(extra)
        if input is not None:
            body["input"] = input
        r = self.call("POST", f"/api/workflows/{wid}/runs", body, headers=headers)
        assert r.status == 202, r
        return self.operation(r)["run_id"]

    def result(self, r, timeout=60.0):
        """The result of an accepted (202) request: {status, body}."""
        loc = r.header("Location")
        deadline = time.monotonic() + timeout
        while True:
            o = self.call("GET", loc)
            assert o.status == 200, o
            if o.body.get("status") == "completed":
                return o.body["result"]
            assert time.monotonic() < deadline, f"operation not done: {o!r}"
            time.sleep(0.1)

    def operation(self, r, timeout=60.0):
        res = self.result(r, timeout)
        assert res["status"] in (200, 201), res
        return res["body"]

    def run(self, run_id):
        r = self.call("GET", f"/api/workflows/runs/{run_id}")
        assert r.status == 200, r
        return r.body

    def wait(self, run_id, until=TERMINAL, timeout=60.0):
        """Poll the run until its status is one of until (or a step is
        waiting, when until is "waiting")."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["status"] in until or (until == "waiting" and run.get("waiting")):
                return run
            assert time.monotonic() < deadline, f"run stuck: {json.dumps(run)[:2000]}"
            time.sleep(0.1)

    def history(self, run_id):
        r = self.call("GET", f"/api/workflows/runs/{run_id}/history")
        assert r.status == 200, r
        return r.body


def step(run, step_id):
    for s in run["steps"]:
        if s["step_id"] == step_id:
            return s
    raise AssertionError(f"no step {step_id} in {json.dumps(run)[:1500]}")


def attempts(hist, step_id):
    return [a for a in hist["attempts"] if a["step_id"] == step_id]


def uid(tag):
    return f"{tag}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------
# The processes
# ---------------------------------------------------------------------------

def make_world(procs, session, groups=("ml",)):
    """An edge, agentkit and the given groups, the stand-ins and a target."""
    st = Standin()
    target = Target()
    env = {"OMNIFY_LLM_BASE_URL": st.base("openai") + "/v1",
           "OMNIFY_LLM_API_KEY": "sk-agentkit-tests", "OMNIFY_LLM_MODEL": "standin-1",
           "OMNIFY_LLM_TIMEOUT_MS": "5000", "OMNIFY_AGENTKIT_HTTP_TIMEOUT_MS": "5000",
           "OMNIFY_AGENTKIT_TIMER_POLL_MS": "200"}
    edge = procs.start_edge(env=env)
    procs.start_group("agentkit", env=env)
    for g in groups:
        procs.start_group(g, env=env)
    for g in ("agentkit",) + tuple(groups):
        wait_status(edge.url, g)
    w = type("World", (), {})()
    w.url, w.secret, w.standin, w.target, w.env = edge.url, session.jwt_secret, st, target, env
    w.procs = procs
    w.a = Client(edge.url, session.jwt_secret)
    w.b = Client(edge.url, session.jwt_secret)
    return w


@pytest.fixture(scope="module")
def world(module_procs, session):
    w = make_world(module_procs, session)
    yield w
    w.target.stop()
    w.standin.stop()


def billed(standin, key):
    return standin.admin("GET", f"/llm/calls?idempotency_key={key}")["billed"]


# ---------------------------------------------------------------------------
# Step kinds
# ---------------------------------------------------------------------------

def test_steps_that_act_command_http_llm_and_noop(world):
    a, t = world.a, world.target
    wid = uid("acts")
    a.put_workflow(wid, [
        {"id": "prep", "kind": "noop", "input": {"n": "${input.n * 2}", "who": "${input.who}"}},
        {"id": "status", "kind": "command", "command": "ml.status"},
        {"id": "call", "kind": "http", "method": "POST", "url": t.url + "/hook",
         "headers": {"X-Run": "${run.id}"},
         "body": {"n": "${steps.prep.output.n}", "group": "${steps.status.output.group}"}},
        {"id": "ask", "kind": "llm",
         "messages": [{"role": "user", "content": "summarise ${steps.prep.output.who} please"}]},
    ], output={"answer": "${steps.ask.output.content}", "echo": "${steps.call.output.body.echo}"})
    run_id = a.start(wid, {"n": 21, "who": "Ann"})
    run = a.wait(run_id)
    assert run["status"] == "completed", run
    assert step(run, "prep")["output"] == {"n": 42, "who": "Ann"}
    assert step(run, "status")["output"]["group"] == "ml"
    assert run["output"]["echo"] == {"n": 42, "group": "ml"}
    assert run["output"]["answer"] == "Stand-in answer to: summarise Ann please"
    hist = a.history(run_id)
    # The http call carried the attempt's key, once.
    call_key = attempts(hist, "call")[0]["key"]
    calls = [c for c in t.calls("/hook") if c["headers"].get("X-Run") == run_id]
    assert [c["key"] for c in calls] == [call_key]
    # The LLM was called once under the attempt's key, and billed once.
    ask_key = attempts(hist, "ask")[0]["key"]
    assert billed(world.standin, ask_key) == 1
    # Every attempt is in the history with its input and output, in order.
    assert [x["step_id"] for x in hist["attempts"]] == ["prep", "status", "call", "ask"]
    assert attempts(hist, "call")[0]["input"]["url"] == t.url + "/hook"
    types = [e["type"] for e in hist["events"]]
    assert types[0] == "agentkit.run.started" and types[-1] == "agentkit.run.completed"
    assert types.count("agentkit.step.completed") == 4


def test_sleeps_branches_and_loops(world):
    a = world.a
    wid = uid("loop")
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    a.put_workflow(wid, [
        {"id": "init", "kind": "noop", "input": {"i": 0}},
        {"id": "nap", "kind": "sleep", "duration_ms": 200},
        {"id": "count", "kind": "noop",
         "input": {"i": "${default(steps.count.output.i, steps.init.output.i) + 1}"}},
        {"id": "again", "kind": "branch",
         "cases": [{"when": "steps.count.output.i < 3", "next": "nap"}], "default": "wake"},
        {"id": "wake", "kind": "sleep_until", "until": until},
        {"id": "never", "kind": "noop", "next": "end"},
        {"id": "skipped", "kind": "noop"},
    ])
    t0 = time.time()
    run = a.wait(a.start(wid))
    assert run["status"] == "completed", run
    assert step(run, "count")["output"] == {"i": 3}
    assert step(run, "count")["attempt"] == 3  # a loop goes on counting attempts
    assert not any(s["step_id"] == "skipped" for s in run["steps"])
    assert time.time() - t0 >= 0.6  # three naps
    hist = a.history(run["run_id"])
    naps = attempts(hist, "nap")
    assert len(naps) == 3
    wake = attempts(hist, "wake")[0]
    assert wake["output"]["slept_until"] >= int(time.mktime(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone) * 1000 - 1000


def test_parallel_all_any_and_n_of_m(world):
    a, t = world.a, world.target
    for join, n, expect in (("all", None, 3), ("any", None, 1), ("n", 2, 2)):
        wid = uid("par")
        spec = {"id": "fan", "kind": "parallel", "join": join, "branches": [
            [{"id": "b0", "kind": "noop", "input": {"b": 0}}],
            [{"id": "b1s", "kind": "sleep", "duration_ms": 300},
             {"id": "b1", "kind": "http", "url": t.url + "/par"}],
            [{"id": "b2s", "kind": "sleep", "duration_ms": 2500},
             {"id": "b2", "kind": "noop", "input": {"b": 2}}],
        ]}
        if n:
            spec["n"] = n
        a.put_workflow(wid, [spec, {"id": "after", "kind": "noop", "input": {"out": "${steps.fan.output}"}}])
        t0 = time.time()
        run = a.wait(a.start(wid), timeout=30)
        assert run["status"] == "completed", run
        outs = step(run, "fan")["output"]["branches"]
        assert len([o for o in outs if o is not None]) == expect, (join, outs)
        assert outs[0] == {"b": 0}
        if join == "all":
            assert outs[2] == {"b": 2} and time.time() - t0 >= 2.5
        else:
            # The slow branch was cancelled, its timer with it.
            assert step(run, "b2s")["status"] == "cancelled"
            assert time.time() - t0 < 2.5
        if join == "n":
            assert outs[1]["status"] == 200


def test_child_workflow(world):
    a = world.a
    child = uid("child")
    a.put_workflow(child, [{"id": "double", "kind": "noop", "input": {"v": "${input.v * 2}"}}])
    parent = uid("parent")
    a.put_workflow(parent, [
        {"id": "kid", "kind": "child", "workflow_id": child, "input": {"v": "${input.v}"}},
        {"id": "use", "kind": "noop", "input": {"got": "${steps.kid.output.output.v}"}},
    ])
    run = a.wait(a.start(parent, {"v": 4}))
    assert run["status"] == "completed", run
    assert step(run, "use")["output"] == {"got": 8}
    kid_id = step(run, "kid")["output"]["run_id"]
    kid = a.run(kid_id)
    assert kid["status"] == "completed" and kid["parent_run_id"] == run["run_id"]
    # A child of a workflow that does not exist fails the step.
    bad = uid("orphan")
    a.put_workflow(bad, [{"id": "kid", "kind": "child", "workflow_id": "no-such-wf",
                          "retry": {"on_exhausted": "fail"}}])
    run = a.wait(a.start(bad))
    assert run["status"] == "failed" and "no such workflow" in run["error"], run


def test_wait_event_on_another_runs_event(world):
    a = world.a
    target_wf = uid("awaited")
    a.put_workflow(target_wf, [{"id": "x", "kind": "noop", "input": {"done": True}}])
    waiter = uid("waiter")
    a.put_workflow(waiter, [
        {"id": "w", "kind": "wait_event", "event": "agentkit.run.completed",
         "filter": {"workflow_id": target_wf}, "timeout_ms": 30000},
        {"id": "late", "kind": "wait_event", "event": "agentkit.run.completed",
         "filter": {"workflow_id": "never-" + target_wf}, "timeout_ms": 500,
         "on_timeout": "continue"},
    ])
    run_id = a.start(waiter)
    a.wait(run_id, until="waiting")
    time.sleep(0.5)
    other = a.start(target_wf)
    run = a.wait(run_id)
    assert run["status"] == "completed", run
    ev = step(run, "w")["output"]["event"]
    assert ev["type"] == "agentkit.run.completed" and ev["data"]["run_id"] == other
    assert step(run, "late")["output"] == {"timed_out": True}
    # Another tenant's event of the same type never reaches this tenant's wait.
    run_id = a.start(waiter)
    a.wait(run_id, until="waiting")
    world.b.put_workflow(target_wf, [{"id": "x", "kind": "noop"}])
    world.b.wait(world.b.start(target_wf))
    time.sleep(1.5)
    assert step(a.run(run_id), "w")["status"] == "waiting"
    a.call("POST", f"/api/workflows/runs/{run_id}/cancel")


# ---------------------------------------------------------------------------
# Retries, failure, pause and resume
# ---------------------------------------------------------------------------

def test_retries_on_durable_timers_then_success(world):
    a, t = world.a, world.target
    path = "/" + uid("flaky")
    t.fail(path, 503, times=2)
    wid = uid("retry")
    a.put_workflow(wid, [{"id": "call", "kind": "http", "url": t.url + path,
                          "retry": {"max_attempts": 4, "backoff_ms": 200, "multiplier": 2}}])
    run = a.wait(a.start(wid))
    assert run["status"] == "completed", run
    hist = a.history(run["run_id"])
    tries = attempts(hist, "call")
    assert [x["status"] for x in tries] == ["failed", "failed", "completed"]
    assert tries[0]["code"] == 503
    keys = [x["key"] for x in tries]
    assert len(set(keys)) == 3  # one key per attempt
    assert [c["key"] for c in t.calls(path)] == keys
    failed = [e for e in hist["events"] if e["type"] == "agentkit.step.failed"]
    assert [e["data"]["final"] for e in failed] == [False, False]


def test_final_error_fails_the_run_when_the_policy_says_fail(world):
    a, t = world.a, world.target
    path = "/" + uid("gone")
    t.fail(path, 404)
    wid = uid("final")
    a.put_workflow(wid, [{"id": "call", "kind": "http", "url": t.url + path,
                          "retry": {"max_attempts": 5, "on_exhausted": "fail"}},
                         {"id": "after", "kind": "noop"}])
    run = a.wait(a.start(wid))
    assert run["status"] == "failed", run
    assert "404" in run["error"]
    assert len(t.calls(path)) == 1  # 404 is final: no retry
    assert not any(s["step_id"] == "after" for s in run["steps"])


def test_exhausted_retries_pause_the_run_and_resume_retries(world):
    a, t = world.a, world.target
    path = "/" + uid("down")
    t.fail(path, 500)
    wid = uid("pause")
    a.put_workflow(wid, [{"id": "call", "kind": "http", "url": t.url + path,
                          "retry": {"max_attempts": 2, "backoff_ms": 100}},
                         {"id": "after", "kind": "noop", "input": {"ok": True}}])
    run_id = a.start(wid)
    run = a.wait(run_id, until=("paused",))
    assert run["paused"]["by"] == "retries" and run["paused"]["step_id"] == "call"
    assert step(run, "call")["status"] == "failed"
    t.heal(path)
    r = a.call("POST", f"/api/workflows/runs/{run_id}/resume")
    assert r.status == 200 and r.body["status"] == "running", r
    run = a.wait(run_id)
    assert run["status"] == "completed", run
    assert [x["status"] for x in attempts(a.history(run_id), "call")] == \
        ["failed", "failed", "completed"]


def test_command_step_errors_and_timeouts(world):
    a = world.a
    wid = uid("cmd")
    # ml.status takes no fields: an unknown one is refused (400: final).
    a.put_workflow(wid, [{"id": "bad", "kind": "command", "command": "ml.status",
                          "input": {"nope": 1}, "retry": {"on_exhausted": "fail"}}])
    run = a.wait(a.start(wid))
    assert run["status"] == "failed" and run["error"].startswith("400"), run
    assert len(attempts(a.history(run["run_id"]), "bad")) == 1


def test_pause_and_resume_by_a_person(world):
    a = world.a
    wid = uid("hold")
    a.put_workflow(wid, [{"id": "nap", "kind": "sleep", "duration_ms": 600},
                         {"id": "after", "kind": "noop"}])
    run_id = a.start(wid)
    r = a.call("POST", f"/api/workflows/runs/{run_id}/pause")
    assert r.status == 200 and r.body["status"] == "paused", r
    assert a.call("POST", f"/api/workflows/runs/{run_id}/pause").status == 409
    time.sleep(1.5)
    run = a.run(run_id)
    # The sleep finished and was recorded; nothing started after it.
    assert run["status"] == "paused" and step(run, "nap")["status"] == "completed", run
    assert not any(s["step_id"] == "after" for s in run["steps"])
    r = a.call("POST", f"/api/workflows/runs/{run_id}/resume")
    assert r.status == 200, r
    assert a.wait(run_id)["status"] == "completed"


def test_cancel(world):
    a = world.a
    wid = uid("cancel")
    a.put_workflow(wid, [{"id": "nap", "kind": "sleep", "duration_ms": 60000},
                         {"id": "after", "kind": "noop"}])
    run_id = a.start(wid)
    time.sleep(0.3)
    r = a.call("POST", f"/api/workflows/runs/{run_id}/cancel")
    assert r.status == 200 and r.body["status"] == "cancelled", r
    assert a.call("POST", f"/api/workflows/runs/{run_id}/cancel").status == 409
    run = a.run(run_id)
    assert run["status"] == "cancelled" and step(run, "nap")["status"] == "cancelled"
    types = [e["type"] for e in a.history(run_id)["events"]]
    assert types[-1] == "agentkit.run.cancelled"


# ---------------------------------------------------------------------------
# People: approvals and signals
# ---------------------------------------------------------------------------

def test_approval_by_a_member_and_role_checks(world):
    a = world.a
    member = a.as_role(world.secret, "member")
    viewer = a.as_role(world.secret, "viewer")
    wid = uid("approve")
    a.put_workflow(wid, [
        {"id": "ok", "kind": "approval", "prompt": "spend ${input.amount}?"},
        {"id": "boss", "kind": "approval", "role": "admin"},
        {"id": "decide", "kind": "branch",
         "cases": [{"when": "steps.ok.output.approved && steps.boss.output.approved",
                    "next": "go"}], "default": "end"},
        {"id": "go", "kind": "noop", "input": {"spent": "${input.amount}"}},
    ])
    run_id = a.start(wid, {"amount": 120})
    run = a.wait(run_id, until="waiting")
    assert run["waiting"][0]["step_id"] == "ok"
    assert run["waiting"][0]["input"]["prompt"] == "spend 120?"
    r = viewer.call("POST", f"/api/workflows/runs/{run_id}/approve",
                    {"step_id": "ok", "approved": True})
    assert_problem(r, 403)
    r = member.call("POST", f"/api/workflows/runs/{run_id}/approve",
                    {"step_id": "nope", "approved": True})
    assert_problem(r, 404)
    r = member.call("POST", f"/api/workflows/runs/{run_id}/approve",
                    {"step_id": "ok", "approved": True, "comment": "fine"})
    assert r.status == 200, r
    deadline = time.time() + 20
    while step_state(a, run_id, "boss") != "waiting":
        assert time.time() < deadline
        time.sleep(0.1)
    # The second approval needs an admin: a member is refused by the group.
    r = member.call("POST", f"/api/workflows/runs/{run_id}/approve",
                    {"step_id": "boss", "approved": True})
    assert_problem(r, 403)
    r = a.call("POST", f"/api/workflows/runs/{run_id}/approve",
               {"step_id": "boss", "approved": True})
    assert r.status == 200, r
    run = a.wait(run_id)
    assert run["status"] == "completed", run
    assert step(run, "ok")["output"]["by"] == member.user
    assert step(run, "ok")["output"]["comment"] == "fine"
    assert step(run, "go")["output"] == {"spent": 120}


def step_state(client, run_id, step_id):
    for s in client.run(run_id)["steps"]:
        if s["step_id"] == step_id:
            return s["status"]
    return None


def test_signals_before_and_after_the_step(world):
    a = world.a
    wid = uid("signal")
    a.put_workflow(wid, [
        {"id": "nap", "kind": "sleep", "duration_ms": 500},
        {"id": "early", "kind": "signal", "signal": "first"},
        {"id": "late", "kind": "signal", "signal": "second", "timeout_ms": 30000},
    ])
    run_id = a.start(wid)
    r = a.call("POST", f"/api/workflows/runs/{run_id}/signal",
               {"name": "first", "payload": {"v": 1}})
    assert r.status == 200 and r.body["delivered"] is False, r  # kept for later
    a.wait(run_id, until="waiting")
    while step_state(a, run_id, "late") != "waiting":
        time.sleep(0.1)
    r = a.call("POST", f"/api/workflows/runs/{run_id}/signal",
               {"name": "second", "payload": {"v": 2}})
    assert r.status == 200 and r.body["delivered"] is True, r
    run = a.wait(run_id)
    assert step(run, "early")["output"] == {"name": "first", "payload": {"v": 1}}
    assert step(run, "late")["output"] == {"name": "second", "payload": {"v": 2}}


# ---------------------------------------------------------------------------
# Re-run, versions, idempotent starts
# ---------------------------------------------------------------------------

def test_rerun_from_a_step_reuses_earlier_outputs(world):
    a, t = world.a, world.target
    path = "/" + uid("rerun")
    t.fail(path, 400)
    wid = uid("rerun")
    a.put_workflow(wid, [
        {"id": "think", "kind": "llm", "messages": [{"role": "user", "content": "plan ${input.topic}"}]},
        {"id": "post", "kind": "http", "method": "POST", "url": t.url + path,
         "body": {"plan": "${steps.think.output.content}"}, "retry": {"on_exhausted": "fail"}},
    ])
    first = a.wait(a.start(wid, {"topic": "budgets"}))
    assert first["status"] == "failed", first
    think_key = attempts(a.history(first["run_id"]), "think")[0]["key"]
    assert billed(world.standin, think_key) == 1
    t.heal(path)
    r = a.call("POST", f"/api/workflows/runs/{first['run_id']}/rerun", {"from_step": "post"})
    assert r.status == 202, r
    new_id = a.operation(r)["run_id"]
    run = a.wait(new_id)
    assert run["status"] == "completed", run
    assert run["rerun_of"] == first["run_id"]
    assert step(run, "think")["reused"] is True
    hist = a.history(new_id)
    assert attempts(hist, "think")[0]["key"] == think_key
    assert billed(world.standin, think_key) == 1  # not asked again
    assert t.calls(path)[-1]["body"] == {"plan": "Stand-in answer to: plan budgets"}
    # A step that is not in the main list, or one after an incomplete step.
    r = a.call("POST", f"/api/workflows/runs/{first['run_id']}/rerun", {"from_step": "nope"})
    assert r.status == 202, r
    assert a.result(r)["status"] == 422


def test_versions_pin_runs_in_flight(world):
    a = world.a
    wid = uid("ver")
    v1 = a.put_workflow(wid, [{"id": "nap", "kind": "sleep", "duration_ms": 800},
                              {"id": "v", "kind": "noop", "input": {"version": 1}}])
    assert v1["version"] == 1 and v1["created"] is True
    old = a.start(wid)
    time.sleep(0.2)
    v2 = a.put_workflow(wid, [{"id": "nap", "kind": "sleep", "duration_ms": 10},
                              {"id": "v", "kind": "noop", "input": {"version": 2}}])
    assert v2["version"] == 2
    again = a.put_workflow(wid, [{"id": "nap", "kind": "sleep", "duration_ms": 10},
                                 {"id": "v", "kind": "noop", "input": {"version": 2}}])
    assert again == dict(v2, created=False)
    new = a.start(wid)
    pinned = a.start(wid, version=1)
    assert step(a.wait(old), "v")["output"] == {"version": 1}
    assert step(a.wait(new), "v")["output"] == {"version": 2}
    assert a.wait(pinned)["version"] == 1
    r = a.call("GET", f"/api/workflows/{wid}")
    assert r.status == 200 and r.body["version"] == 2, r
    r = a.call("GET", f"/api/workflows/{wid}?version=1")
    assert r.body["steps"][1]["input"] == {"version": 1}, r
    listed = a.call("GET", "/api/workflows").body["workflows"]
    assert any(w["workflow_id"] == wid and w["version"] == 2 for w in listed)


def test_idempotent_starts(world):
    a = world.a
    wid = uid("idem")
    a.put_workflow(wid, [{"id": "x", "kind": "noop"}])
    key = {"Idempotency-Key": uid("key")}
    first = a.start(wid, headers=key)
    second = a.start(wid, headers=key)
    assert first == second
    rid = str(uuid.uuid4())
    assert a.start(wid, run_id=rid) == rid
    r = a.call("POST", f"/api/workflows/{wid}/runs", {"run_id": rid})
    again = a.operation(r)
    assert again["run_id"] == rid and again["created"] is False
    runs = a.call("GET", f"/api/workflows/runs?workflow_id={wid}").body["runs"]
    assert len(runs) == 2, runs


# ---------------------------------------------------------------------------
# Definitions refused, tenants, roles
# ---------------------------------------------------------------------------

def test_definitions_with_problems_are_refused_naming_each(world):
    a = world.a
    r = a.call("PUT", "/api/workflows/bad", {"steps": [
        {"id": "a", "kind": "noop", "next": "nowhere"},
        {"id": "a", "kind": "command", "command": "nosuch.thing"},
        {"id": "b", "kind": "branch", "cases": [{"when": "steps.a.output ==", "next": "a"}]},
        {"id": "c", "kind": "parallel", "branches": [[{"id": "d", "kind": "teleport"}]]},
        {"id": "e", "kind": "http", "url": "ftp://x"},
        {"id": "f", "kind": "sleep", "url": "http://x"},
    ]})
    assert_problem(r, 422, {"steps[0].next", "steps[1].id", "steps[1].command",
                            "steps[2].cases[0].when", "steps[3].branches[0][0].kind",
                            "steps[4].url", "steps[5].url"})
    # The schema's own checks come first, at the edge (400).
    r = a.call("PUT", "/api/workflows/bad", {"steps": [{"id": "a", "kind": "noop",
                                                         "retry": {"max_attempts": 0}}]})
    assert_problem(r, 400, {"steps[0].retry.max_attempts"})
    r = a.call("POST", "/api/workflows/no-such/runs", {})
    assert r.status == 202
    assert a.result(r)["status"] == 404


def test_tenants_never_see_each_other(world):
    a, b = world.a, world.b
    wid = uid("mine")
    a.put_workflow(wid, [{"id": "nap", "kind": "sleep", "duration_ms": 30000}])
    run_id = a.start(wid)
    for method, path, body in [
            ("GET", f"/api/workflows/runs/{run_id}", None),
            ("GET", f"/api/workflows/runs/{run_id}/history", None),
            ("POST", f"/api/workflows/runs/{run_id}/cancel", {}),
            ("POST", f"/api/workflows/runs/{run_id}/pause", {}),
            ("POST", f"/api/workflows/runs/{run_id}/signal", {"name": "x"}),
            ("POST", f"/api/workflows/runs/{run_id}/approve", {"step_id": "nap", "approved": True}),
            ("GET", f"/api/workflows/{wid}", None)]:
        r = b.call(method, path, body)
        assert_problem(r, 404)
        assert run_id not in r.raw.decode()
    r = b.call("POST", f"/api/workflows/runs/{run_id}/rerun", {"from_step": "nap"})
    assert r.status == 202 and b.result(r)["status"] == 404
    assert run_id not in json.dumps(b.call("GET", "/api/workflows/runs").body)
    assert wid not in json.dumps(b.call("GET", "/api/workflows").body)
    # B starting A's workflow id finds none of its own.
    r = b.call("POST", f"/api/workflows/{wid}/runs", {"run_id": run_id})
    res = b.result(r)
    assert res["status"] in (404, 409) and wid not in json.dumps(res), res
    assert a.call("POST", f"/api/workflows/runs/{run_id}/cancel").status == 200


def test_roles(world):
    a = world.a
    viewer = a.as_role(world.secret, "viewer")
    wid = uid("roles")
    a.put_workflow(wid, [{"id": "x", "kind": "noop"}])
    assert_problem(viewer.call("PUT", f"/api/workflows/{wid}", {"steps": [{"id": "x", "kind": "noop"}]}), 403)
    assert_problem(viewer.call("POST", f"/api/workflows/{wid}/runs", {}), 403)
    run_id = a.start(wid)
    assert viewer.call("GET", f"/api/workflows/runs/{run_id}").status == 200
    assert_problem(viewer.call("POST", f"/api/workflows/runs/{run_id}/cancel", {}), 403)
    r = http("GET", world.url + f"/api/workflows/runs/{run_id}")
    assert_problem(r, 401)
