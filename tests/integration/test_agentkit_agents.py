"""Agents and live progress over HTTP: an agent that answers with tool calls
into other groups (side by side, each a recorded step, with the caller's
tenant and roles), conversation threads, approval-gated tools, limits,
refused definitions and tenants; and the Server-Sent Events stream of a
run's steps (history, live, reconnect with Last-Event-ID, the end, tenants).

The model is the OpenAI-compatible stand-in with scripted answers; the tools
are commands of ml and integrations (their status, until their domains
land).
"""

import json
import time
import uuid

import pytest

from conftest import assert_problem
from test_agentkit import attempts, billed, make_world, step, uid
from test_edge_routes import SSE


@pytest.fixture(scope="module")
def world(module_procs, session):
    w = make_world(module_procs, session, groups=("ml", "integrations"))
    yield w
    w.target.stop()
    w.standin.stop()


def script(world, name, contains, turns):
    world.standin.admin("POST", "/llm/scripts",
                        {"name": name, "match": {"contains": contains}, "turns": turns})


def make_agent(client, **spec):
    body = {"name": "helper", "instructions": "You help with marketing data.",
            "tools": ["ml.status", "integrations.status"]}
    body.update(spec)
    r = client.call("POST", "/api/agents", body)
    assert r.status == 201, r
    return r.body["agent_id"]


def ask(client, agent_id, message, **extra):
    r = client.call("POST", f"/api/agents/{agent_id}/runs", dict(extra, message=message))
    assert r.status == 202, r
    return client.operation(r)


# ---------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------

def test_agent_answers_with_parallel_tool_calls_into_other_groups(world):
    a = world.a
    tag = uid("report")
    script(world, tag, tag, [
        {"tool_calls": [{"name": "ml__status", "arguments": {}},
                        {"name": "integrations__status", "arguments": {}}]},
        {"content": "Both groups answer."},
    ])
    agent = make_agent(a)
    got = a.call("GET", f"/api/agents/{agent}").body
    names = [t["function"]["name"] for t in got["tool_schemas"]]
    assert names == ["ml__status", "integrations__status"], got
    assert got["tool_schemas"][0]["function"]["parameters"]["type"] == "object"
    started = ask(a, agent, f"give me a {tag}")
    run = a.wait(started["run_id"])
    assert run["status"] == "completed", run
    assert run["output"]["answer"] == "Both groups answer."
    assert run["output"]["iterations"] == 2 and run["output"]["tokens"] > 0
    assert step(run, "tool-1-1")["output"]["group"] == "ml"
    assert step(run, "tool-1-2")["output"]["group"] == "integrations"
    hist = a.history(run["run_id"])
    order = [x["step_id"] for x in hist["attempts"]]
    assert order[0] == "llm-1" and order[-1] == "llm-2"
    assert set(order[1:3]) == {"tool-1-1", "tool-1-2"}
    # Each model call billed once, under its attempt's key.
    for x in attempts(hist, "llm-1") + attempts(hist, "llm-2"):
        assert billed(world.standin, x["key"]) == 1
    # The second call carried the tools' results back to the model.
    second = attempts(hist, "llm-2")[0]["input"]["messages"]
    tools = [m for m in second if m["role"] == "tool"]
    assert len(tools) == 2 and json.loads(tools[0]["content"])["group"] == "ml"
    assert [e["type"] for e in hist["events"]].count("agentkit.agent.answered") == 2
    # The conversation is kept as a thread.
    thread = a.call("GET", f"/api/agents/threads/{started['thread_id']}").body
    assert [m["role"] for m in thread["messages"]] == \
        ["user", "assistant", "tool", "tool", "assistant"]
    assert thread["runs"] == [run["run_id"]]


def test_a_thread_continues_the_conversation(world):
    a = world.a
    tag = uid("thread")
    script(world, tag, tag, [{"content": "first answer"}, {"content": "second answer"}])
    agent = make_agent(a, tools=[])
    first = ask(a, agent, f"hello {tag}")
    assert a.wait(first["run_id"])["output"]["answer"] == "first answer"
    second = ask(a, agent, "and again", thread_id=first["thread_id"])
    run = a.wait(second["run_id"])
    # The stand-in answers by the number of assistant turns it is sent: the
    # thread's history went with the question.
    assert run["output"]["answer"] == "second answer", run
    assert second["thread_id"] == first["thread_id"]
    thread = a.call("GET", f"/api/agents/threads/{first['thread_id']}").body
    assert [m["content"] for m in thread["messages"]] == \
        [f"hello {tag}", "first answer", "and again", "second answer"]
    # Another tenant cannot read it, nor continue it.
    assert_problem(world.b.call("GET", f"/api/agents/threads/{first['thread_id']}"), 404)


def test_approval_gated_tool_waits_for_a_person(world):
    a = world.a
    tag = uid("gated")
    script(world, tag, tag, [
        {"tool_calls": [{"name": "ml__status", "arguments": {}}]},
        {"content": "done"},
    ])
    agent = make_agent(a, approval_tools=["ml.status"])
    for decision in (True, False):
        run_id = ask(a, agent, f"check {tag}")["run_id"]
        run = a.wait(run_id, until="waiting")
        assert run["waiting"][0]["step_id"] == "tool-1-1", run
        r = a.call("POST", f"/api/workflows/runs/{run_id}/approve",
                   {"step_id": "tool-1-1", "approved": decision, "comment": "ok?"})
        assert r.status == 200, r
        run = a.wait(run_id)
        assert run["status"] == "completed", run
        out = step(run, "tool-1-1")["output"]
        if decision:
            assert out["group"] == "ml"
        else:
            assert out["error"] == "a person refused this tool call"


def test_limits_and_bad_arguments(world):
    a = world.a
    tag = uid("loop")
    script(world, tag, tag, [{"tool_calls": [{"name": "ml__status", "arguments": "[1, 2]"}]}])
    agent = make_agent(a, max_iterations=2)
    run = a.wait(ask(a, agent, f"forever {tag}")["run_id"])
    assert run["status"] == "failed" and "limit of 2 model calls" in run["error"], run
    # Arguments that are not an object are answered to the model as an error.
    assert "not a JSON object" in step(run, "tool-1-1")["output"]["error"]
    tag = uid("budget")
    script(world, tag, tag, [{"tool_calls": [{"name": "ml__status", "arguments": {}}]}])
    agent = make_agent(a, token_budget=100, max_iterations=50)
    run = a.wait(ask(a, agent, f"spend {tag} " + "x" * 400)["run_id"])
    assert run["status"] == "failed" and "token budget" in run["error"], run


def test_agent_definitions_refused_and_tenants(world):
    a, b = world.a, world.b
    r = a.call("POST", "/api/agents", {"name": "x", "instructions": "y",
                                       "tools": ["no.such", "agentkit.runs.start"]})
    assert_problem(r, 422, {"tools"})
    r = a.call("POST", "/api/agents", {"name": "x", "instructions": "y", "tools": ["ml.status"],
                                       "approval_tools": ["integrations.status"]})
    assert_problem(r, 422, {"approval_tools[0]"})
    agent = make_agent(a, agent_id=uid("named"))
    assert agent.startswith("named-")
    again = a.call("POST", "/api/agents", {"agent_id": agent, "name": "helper 2",
                                           "instructions": "Be brief."})
    assert again.status == 201 and again.body["version"] == 2, again
    # The same definition again: no new version, and the document's one
    # success status (it answered an undeclared 200).
    same = a.call("POST", "/api/agents", {"agent_id": agent, "name": "helper 2",
                                          "instructions": "Be brief."})
    assert same.status == 201 and same.body["version"] == 2, same
    assert same.body["created"] is False, same
    r = b.call("POST", f"/api/agents/{agent}/runs", {"message": "hi"})
    assert r.status == 202 and b.result(r)["status"] == 404
    assert_problem(b.call("GET", f"/api/agents/{agent}"), 404)
    assert agent not in json.dumps(b.call("GET", "/api/agents").body)


# ---------------------------------------------------------------------------
# Server-Sent Events
# ---------------------------------------------------------------------------

def sse(world, client, run_id, last=None):
    h = {"Authorization": "Bearer " + client.token}
    if last:
        h["Last-Event-ID"] = last
    return SSE(f"{world.url}/api/workflows/runs/{run_id}/events", h)


def read_all(stream, timeout=30.0):
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = stream.next()
        if ev is None:
            return out
        out.append(ev)
    raise AssertionError(f"stream did not end: {out}")


def test_stream_of_a_run_history_live_and_reconnect(world):
    a = world.a
    wid = uid("live")
    a.put_workflow(wid, [{"id": "one", "kind": "noop"},
                         {"id": "gate", "kind": "signal", "signal": "go"},
                         {"id": "nap", "kind": "sleep", "duration_ms": 300},
                         {"id": "two", "kind": "noop", "input": {"v": 2}}])
    run_id = a.start(wid)
    a.wait(run_id, until="waiting")
    s = sse(world, a, run_id)
    assert s.status == 200 and s.headers["content-type"].startswith("text/event-stream")
    first = [s.next() for _ in range(5)]  # history: started, one x2, gate x2
    assert [e["event"] for e in first] == [
        "agentkit.run.started", "agentkit.step.started", "agentkit.step.completed",
        "agentkit.step.started", "agentkit.step.suspended"]
    assert all(e["data"]["run_id"] == run_id for e in first)
    s.close()
    # Reconnect after the third: the rest of the history, then live events.
    s = sse(world, a, run_id, last=first[2]["id"])
    again = [s.next(), s.next()]
    assert [e["id"] for e in again] == [first[3]["id"], first[4]["id"]]
    t0 = time.monotonic()
    assert a.call("POST", f"/api/workflows/runs/{run_id}/signal", {"name": "go"}).status == 200
    live = read_all(s)
    assert time.monotonic() - t0 < 10
    types = [e["event"] for e in live]
    assert types[-1] == "agentkit.run.completed", types
    assert "agentkit.step.completed" in types and len({e["id"] for e in live}) == len(live)
    done = [e for e in live if e["event"] == "agentkit.step.completed"
            and e["data"]["step_id"] == "two"][0]
    assert done["data"]["output"] == {"v": 2}
    # The ids are the history's: a full replay from the start agrees.
    hist = [e["id"] for e in a.history(run_id)["events"]]
    assert [e["id"] for e in first + live] == hist
    # A finished run's stream gives its history and ends.
    s = sse(world, a, run_id)
    assert [e["id"] for e in read_all(s)] == hist


def test_stream_of_an_agent_run_shows_its_steps(world):
    a = world.a
    tag = uid("agent-live")
    script(world, tag, tag, [{"tool_calls": [{"name": "ml__status", "arguments": {}}]},
                             {"content": "streamed"}])
    agent = make_agent(a)
    run_id = ask(a, agent, f"go {tag}")["run_id"]
    events = read_all(sse(world, a, run_id))
    steps = [(e["event"], e["data"].get("step_id")) for e in events
             if e["event"].startswith("agentkit.step.") or e["event"] == "agentkit.agent.answered"]
    assert ("agentkit.step.completed", "llm-1") in steps
    assert ("agentkit.agent.answered", "llm-1") in steps
    assert ("agentkit.step.completed", "tool-1-1") in steps
    answered = [e for e in events if e["event"] == "agentkit.agent.answered"]
    assert answered[0]["data"]["tool_calls"][0]["name"] == "ml__status"
    assert answered[-1]["data"]["content"] == "streamed"
    assert events[-1]["event"] == "agentkit.run.completed"


def test_stream_is_kept_to_its_tenant(world):
    a, b = world.a, world.b
    wid = uid("private")
    a.put_workflow(wid, [{"id": "x", "kind": "noop"}])
    run_id = a.start(wid)
    a.wait(run_id)
    s = sse(world, b, run_id)
    assert s.status == 404, s.status
    assert run_id not in s.body.decode()
