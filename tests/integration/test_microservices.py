"""Microservices: omnify-edge plus the seven group processes, each on its
own ops port."""

import re
import socket

import pytest

from conftest import (GROUPS, LOW_ARGON2, assert_problem, binary_version, http, login,
                      signup, stop_all, wait_all_status, wait_ready)


@pytest.fixture(scope="module")
def system(module_procs):
    groups = {g: module_procs.start_group(g, wait=False, **LOW_ARGON2) for g in GROUPS}
    edge = module_procs.start_edge()
    for g, p in groups.items():
        wait_ready(p, p.url + "/ready")
    statuses = wait_all_status(edge.url)
    return {"edge": edge, "groups": groups, "statuses": statuses}


def test_every_status_answers_from_its_own_process(system):
    edge, groups = system["edge"], system["groups"]
    version = binary_version()
    pids = set()
    for g in GROUPS:
        r = http("GET", f"{edge.url}/api/{g}/status")
        assert r.status == 200, r
        b = r.body
        assert b["group"] == g, b
        assert b["mode"] == "standalone", b
        assert b["pid"] == groups[g].pid, (g, b, groups[g].pid)
        assert b["pid"] != edge.pid
        assert b["host"] == socket.gethostname(), b
        assert b["version"] == version, b
        assert b["instance_id"].endswith(f"-{groups[g].pid}"), b
        assert isinstance(b["uptime_s"], (int, float)) and b["uptime_s"] >= 0, b
        pids.add(b["pid"])
    assert len(pids) == len(GROUPS)


def test_signup_login_me_through_the_edge(system):
    url = system["edge"].url
    email, r = signup(url, password="password-ms-1", name="Grace")
    assert r.status == 201, r
    user = r.body
    assert user["email"] == email and user["name"] == "Grace"
    _, dup = signup(url, email=email, password="password-ms-2")
    assert_problem(dup, 409)
    assert_problem(login(url, email, "wrong-password"), 401)
    lg = login(url, email, "password-ms-1")
    assert lg.status == 200, lg
    me = http("GET", url + "/api/auth/me",
              headers={"Authorization": "Bearer " + lg.body["access_token"]})
    assert me.status == 200, me
    assert me.body["id"] == user["id"] and me.body["email"] == email, me


def test_group_ops_ports_answer(system):
    for g, p in system["groups"].items():
        h = http("GET", p.url + "/health")
        assert h.status == 200, h
        assert h.body == {"status": "ok", "group": g}, h
        rd = http("GET", p.url + "/ready")
        assert rd.status == 200, rd
        assert rd.body.get("kafka") is True and rd.body.get("store") is True, rd
        m = http("GET", p.url + "/metrics")
        assert m.status == 200, m
        assert m.content_type.startswith("text/plain"), m
        # The status requests above were handled by this very process.
        assert re.search(r'omnify_messages_handled_total\{group="%s",type="%s\.status",'
                         r'result="ok"\} [1-9]' % (g, g), m.body), (g, m.body[:2000])
        # ... and no other group's handlers live in it.
        others = [o for o in GROUPS if o != g]
        for o in others:
            assert f'group="{o}"' not in m.body, (g, o)
        nf = http("GET", p.url + "/nope")
        assert nf.status == 404, nf
        post = http("POST", p.url + "/health", body=b"")
        assert post.status == 405, post
        assert "GET" in (post.header("Allow") or ""), dict(post.headers)


def test_edge_serves_no_ops_of_groups(system):
    # The edge alone holds no group: /ops/... is not there.
    r = http("GET", system["edge"].url + "/ops/auth/health")
    assert_problem(r, 404)


def test_edge_builtins(system):
    url = system["edge"].url
    assert http("GET", url + "/health").status == 200
    rd = http("GET", url + "/ready")
    assert rd.status == 200 and rd.body.get("kafka") is True, rd
    m = http("GET", url + "/metrics")
    assert m.status == 200 and "omnify_http_requests_total" in m.body, m
    o = http("GET", url + "/openapi.json")
    assert o.status == 200 and o.body.get("openapi") == "3.1.0", o


def test_sigterm_all_exit_0(system):
    procs = [system["edge"]] + list(system["groups"].values())
    codes = stop_all(procs)
    assert all(c == 0 for c in codes.values()), codes
