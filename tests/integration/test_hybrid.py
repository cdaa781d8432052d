"""Hybrid: a monolith without integrations and ml, and those two as their
own processes. Same topics and consumer groups: only where they run moves."""

import pytest

from conftest import GROUPS, assert_problem, http, stop_all, wait_all_status, wait_ready

OUTSIDE = ["integrations", "ml"]


@pytest.fixture(scope="module")
def hybrid(module_procs):
    outside = {g: module_procs.start_group(g, wait=False) for g in OUTSIDE}
    mono = module_procs.start_monolith(["--except", ",".join(OUTSIDE)])
    for p in outside.values():
        wait_ready(p, p.url + "/ready")
    wait_all_status(mono.url)
    return {"mono": mono, "outside": outside}


def test_statuses_come_from_the_right_process(hybrid):
    mono, outside = hybrid["mono"], hybrid["outside"]
    for g in GROUPS:
        r = http("GET", f"{mono.url}/api/{g}/status")
        assert r.status == 200, r
        b = r.body
        assert b["group"] == g, b
        if g in OUTSIDE:
            assert b["mode"] == "standalone", b
            assert b["pid"] == outside[g].pid, (g, b, outside[g].pid)
        else:
            assert b["mode"] == "monolith", b
            assert b["pid"] == mono.pid, (g, b, mono.pid)


def test_statuses_stay_put_when_asked_again(hybrid):
    # Several requests land on several partitions: every one must still be
    # answered by the one process that owns the group.
    mono, outside = hybrid["mono"], hybrid["outside"]
    for _ in range(5):
        for g in OUTSIDE:
            r = http("GET", f"{mono.url}/api/{g}/status")
            assert r.status == 200 and r.body["pid"] == outside[g].pid, r
        r = http("GET", f"{mono.url}/api/auth/status")
        assert r.status == 200 and r.body["pid"] == mono.pid, r


def test_monolith_ops_only_for_its_own_groups(hybrid):
    mono = hybrid["mono"]
    for g in GROUPS:
        r = http("GET", f"{mono.url}/ops/{g}/health")
        if g in OUTSIDE:
            assert_problem(r, 404)
        else:
            assert r.status == 200 and r.body.get("group") == g, r
    for g, p in hybrid["outside"].items():
        r = http("GET", p.url + "/health")
        assert r.status == 200 and r.body.get("group") == g, r


def test_sigterm_all_exit_0(hybrid):
    codes = stop_all([hybrid["mono"]] + list(hybrid["outside"].values()))
    assert all(c == 0 for c in codes.values()), codes
