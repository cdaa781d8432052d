"""A group that is down: its commands stay queued and are answered once it
starts; the client gets 504 with an operation to poll. Also the async
mode (Prefer: respond-async) and the tenant check of operations."""

import re
import time
import uuid

import pytest

from conftest import (GROUPS, LOW_ARGON2, assert_problem, http, login, poll_operation,
                      signup, stop_all, wait_all_status, wait_ready)

OP_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def system(module_procs):
    groups = {g: module_procs.start_group(g, wait=False, **LOW_ARGON2)
              for g in GROUPS if g != "ml"}
    edge = module_procs.start_edge()
    for p in groups.values():
        wait_ready(p, p.url + "/ready")
    wait_all_status(edge.url, [g for g in GROUPS if g != "ml"])
    return {"edge": edge, "groups": groups, "procs": module_procs}


def _location_id(r):
    loc = r.header("Location") or ""
    m = re.fullmatch(r"/api/operations/(%s)" % OP_ID_RE.pattern, loc)
    assert m, f"Location {loc!r} is not /api/operations/<id>: {r!r}"
    return m.group(1)


def test_command_for_a_down_group_is_kept_and_answered_later(system):
    edge = system["edge"]
    r = http("GET", edge.url + "/api/ml/status", headers={"Prefer": "wait=2"})
    assert_problem(r, 504)
    assert 1.5 <= r.elapsed < 5, f"Prefer: wait=2 answered after {r.elapsed:.2f}s"
    op_id = _location_id(r)
    assert op_id in r.body.get("detail", ""), r

    p = http("GET", f"{edge.url}/api/operations/{op_id}")
    assert p.status == 200, p
    assert p.body == {"operation_id": op_id, "status": "pending"}, p

    ml = system["procs"].start_group("ml")
    done = poll_operation(edge.url, op_id, timeout=60)
    assert done.status == 200, done
    assert done.body.get("status") == "completed", f"operation never completed: {done!r}"
    assert done.body["operation_id"] == op_id
    result = done.body["result"]
    assert result["status"] == 200, done
    assert result["body"]["group"] == "ml", done
    assert result["body"]["pid"] == ml.pid, (done, ml.pid)
    assert result["body"]["mode"] == "standalone", done

    # And ml now answers synchronously too.
    s = http("GET", edge.url + "/api/ml/status")
    assert s.status == 200 and s.body["pid"] == ml.pid, s


def test_respond_async_signup(system):
    edge = system["edge"]
    email = f"async-{uuid.uuid4().hex[:10]}@example.com"
    r = http("POST", edge.url + "/api/auth/signup",
             json_body={"email": email, "password": "async-password", "name": "Async"},
             headers={"Prefer": "respond-async"})
    assert r.status == 202, r
    assert r.content_type.startswith("application/json"), r
    op_id = _location_id(r)
    assert r.body == {"operation_id": op_id, "status": "accepted"}, r
    assert r.elapsed < 5, r

    done = poll_operation(edge.url, op_id, timeout=60)
    assert done.status == 200 and done.body.get("status") == "completed", done
    assert done.body["result"]["status"] == 201, done
    assert done.body["result"]["body"]["email"] == email, done

    # The account exists: login works.
    assert login(edge.url, email, "async-password").status == 200


def test_async_failure_result_is_kept(system):
    # A command that fails (duplicate email) is completed with its error.
    edge = system["edge"]
    email, first = signup(edge.url)
    assert first.status == 201, first
    r = http("POST", edge.url + "/api/auth/signup",
             json_body={"email": email, "password": "whatever-pass", "name": "Dup"},
             headers={"Prefer": "respond-async"})
    assert r.status == 202, r
    done = poll_operation(edge.url, _location_id(r), timeout=60)
    assert done.body.get("status") == "completed", done
    assert done.body["result"]["status"] == 409, done
    assert done.body["result"]["body"]["status"] == 409, done


def test_operation_of_a_tenant_needs_its_token(system):
    edge = system["edge"]
    tokens = []
    for _ in range(2):
        email, r = signup(edge.url, password="tenant-password")
        assert r.status == 201, r
        lg = login(edge.url, email, "tenant-password")
        assert lg.status == 200, lg
        tokens.append((r.body, lg.body["access_token"]))
    (user_a, tok_a), (_user_b, tok_b) = tokens

    r = http("GET", edge.url + "/api/auth/me",
             headers={"Authorization": "Bearer " + tok_a, "Prefer": "respond-async"})
    assert r.status == 202, r
    op_id = _location_id(r)
    done = poll_operation(edge.url, op_id, headers={"Authorization": "Bearer " + tok_a})
    assert done.status == 200 and done.body.get("status") == "completed", done
    assert done.body["result"]["status"] == 200, done
    assert done.body["result"]["body"]["id"] == user_a["id"], done

    anon = http("GET", f"{edge.url}/api/operations/{op_id}")
    assert_problem(anon, 404)
    other = http("GET", f"{edge.url}/api/operations/{op_id}",
                 headers={"Authorization": "Bearer " + tok_b})
    assert_problem(other, 404)
    assert anon.raw == other.raw


def test_unknown_operations(system):
    edge = system["edge"]
    # Not an id at all.
    assert_problem(http("GET", edge.url + "/api/operations/not-an-id"), 404)
    # An id from 1970: older than any retention, so not pending but unknown.
    assert_problem(http("GET", edge.url + "/api/operations/00000000-0001-7000-8000-000000000000"),
                   404)


def test_operations_only_get(system):
    edge = system["edge"]
    r = http("DELETE", edge.url + "/api/operations/00000000-0001-7000-8000-000000000000")
    assert_problem(r, 405)
    assert "GET" in (r.header("Allow") or "")
    r = http("POST", edge.url + "/api/operations/00000000-0001-7000-8000-000000000000",
             json_body={})
    assert_problem(r, 405)
    assert "GET" in (r.header("Allow") or "")


def test_wait_is_bounded_by_prefer(system):
    # Prefer: wait=1 on a group that answers is still answered (200) fast.
    edge = system["edge"]
    r = http("GET", edge.url + "/api/auth/status", headers={"Prefer": "wait=1"})
    assert r.status == 200, r
    assert r.elapsed < 1.5, r


def test_sigterm_all_exit_0(system):
    procs = [p for p in system["procs"].procs if p.alive()]
    assert len(procs) == len(GROUPS) + 1, [p.name for p in procs]
    codes = stop_all(procs)
    assert all(c == 0 for c in codes.values()), codes
