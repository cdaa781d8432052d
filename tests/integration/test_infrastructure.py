"""The infrastructure group over HTTP: cluster, consumer groups (lag and
status while a group is stopped and after it returns), dead letters,
dependencies, topology of processes, offset reset refused while a group
has members, the SSE stream, answers saying what is unknown while the
observed broker is down, and non-admins refused.

One hybrid system for the module: a monolith without ml, and omnify-ml on
its own, so a test can stop ml and start it again.
"""

import json
import os
import socket
import sys
import time

import pytest

from conftest import GROUPS, REPO, assert_problem, http, wait_all_status, free_port
from infra_helpers import auth, get, produce_command, token, until

sys.path.insert(0, os.path.join(REPO, "tests", "providers"))
from standin.client import Standin  # noqa: E402

ROUTES = ["/api/infrastructure/cluster", "/api/infrastructure/groups",
          "/api/infrastructure/dead-letters", "/api/infrastructure/dependencies",
          "/api/infrastructure/topology"]


@pytest.fixture(scope="module")
def system(module_procs, session):
    # Kong and Metabase configured (their stand-ins, tests/providers),
    # Temporal and Airbyte not: absent from the dependencies.
    deps = Standin()
    env = {"OMNIFY_INFRA_SAMPLE_S": "2", "OMNIFY_INFRA_WINDOW": "3",
           "OMNIFY_KONG_URL": deps.base("kong") + "/status",
           "OMNIFY_METABASE_URL": deps.base("metabase") + "/api/health"}
    mono = module_procs.start_monolith(["--except", "ml"], env=env)
    ml = module_procs.start_group("ml", env=env)
    wait_all_status(mono.url)
    admin = token(session)
    # The first samples: every group found with its members.
    until(lambda: len(groups_by_group(mono.url, admin)) >= len(GROUPS),
          timeout=60, what="every group sampled")
    # In a full run the session's database already holds the samples and
    # processes of earlier modules' systems: wait for this system's own
    # heartbeats (its pids) before any test reads the topology.
    until(lambda: {mono.pid, ml.pid} <= live_pids(mono.url, admin),
          timeout=60, what="this system's processes in the topology")
    yield {"url": mono.url, "mono": mono, "ml": ml, "admin": admin,
           "procs": module_procs, "deps": deps}
    deps.stop()


def groups_by_group(url, tok):
    r = get(url, tok, "/api/infrastructure/groups")
    assert r.status == 200, r
    return {g["group"]: g for g in r.body["groups"] if g.get("group") and
            not g.get("subscription") and g["found"]}


def live_pids(url, tok):
    r = get(url, tok, "/api/infrastructure/topology")
    assert r.status == 200, r
    return {p["pid"] for g in r.body["groups"] for p in g["processes"]
            if not p["stale"]}


def ml_group(system):
    return groups_by_group(system["url"], system["admin"]).get("ml")


def test_non_admins_are_refused(system, session):
    member = token(session, roles=("member",))
    for path in ROUTES + ["/api/infrastructure/groups/x",
                          "/api/infrastructure/stream"]:
        assert_problem(get(system["url"], member, path), 403)
        assert_problem(http("GET", system["url"] + path), 401)
    r = http("POST", system["url"] + "/api/infrastructure/groups/x/reset",
             json_body={"to": "latest"}, headers=auth(member))
    assert_problem(r, 403)


def test_topology_names_every_group_and_its_process(system):
    r = get(system["url"], system["admin"], "/api/infrastructure/topology")
    assert r.status == 200, r
    by = {g["group"]: g for g in r.body["groups"]}
    assert set(by) == set(GROUPS)
    for g in GROUPS:
        assert by[g]["live"] >= 1, by[g]
        want = system["ml"].pid if g == "ml" else system["mono"].pid
        # Processes of earlier test modules may still be listed until their
        # heartbeats age out: this system's own is the one checked.
        mine = [x for x in by[g]["processes"] if x["pid"] == want]
        assert mine, by[g]
        p = mine[0]
        assert p["mode"] == ("standalone" if g == "ml" else "monolith")
        assert p["rss_bytes"] > 0 and p["uptime_s"] >= 0 and p["version"]
    # The monolith's edge beats too, as "edge", with the groups' instance.
    edges = until(lambda: (lambda e: e if any(x["pid"] == system["mono"].pid and not x["stale"]
                                              for x in e) else None)(
        get(system["url"], system["admin"], "/api/infrastructure/topology").body["edges"]),
        timeout=30, what="the monolith's edge in the topology")
    e = next(x for x in edges if x["pid"] == system["mono"].pid)
    assert e["mode"] == "monolith" and e["group"] == "edge", e
    assert any(x["instance"] == e["instance"] for x in by["auth"]["processes"]), (e, by["auth"])


def test_cluster_lists_topics_with_partitions_and_watermarks(system, session):
    r = get(system["url"], system["admin"],
            "/api/infrastructure/cluster?search=ml.&limit=10")
    assert r.status == 200, r
    b = r.body
    assert b["ok"] is True and b["brokers"] and b["controller"] is not None
    names = {t["name"] for t in b["topics"]}
    assert f"{session.topic_prefix}ml.commands" in names
    t = next(t for t in b["topics"] if t["name"].endswith("ml.commands"))
    assert t["partitions"] == 8 and len(t["parts"]) == 8
    assert t["retention_ms"] == 604800000 and t["cleanup"] == "delete"
    assert all(p["leader"] >= 0 and p["high"] >= p["low"] >= 0 for p in t["parts"])
    assert any("DescribeLogDirs" in u for u in b["unknown"])
    assert_problem(get(system["url"], system["admin"],
                       "/api/infrastructure/cluster?limit=0"), 400, ["limit"])


def test_lag_rises_while_a_group_is_stopped_and_falls_when_it_returns(system, session):
    url, admin = system["url"], system["admin"]
    ml = system["ml"]
    gid = f"{session.topic_prefix}ml"
    assert ml.stop() == 0
    g = until(lambda: (lambda x: x if x and x["members"] == [] else None)(ml_group(system)),
              timeout=60, what="ml without members")
    # Commands wait for nobody: 20 of them, async.
    for i in range(20):
        r = http("GET", url + "/api/ml/status",
                 headers={"Prefer": "respond-async"})
        assert r.status == 202, r
    g = until(lambda: (lambda x: x if x and x["lag"] + x["waiting_uncommitted"] >= 20 and
                       x["status"] == "STOP" else None)(ml_group(system)),
              timeout=60, what="ml lag >= 20 and STOP")
    assert g["state"] in ("Empty", "Dead"), g
    d = get(url, admin, f"/api/infrastructure/groups/{gid}").body
    assert d["lag"] + d["waiting_uncommitted"] >= 20 and d["status"] == "STOP"
    # The list gives the number of partitions, the group's answer lists them.
    assert "partitions" not in g and g["partition_count"] == len(d["partitions"]) > 0, g
    assert "partition_count" not in d, d
    lagging = [p for p in d["partitions"] if p.get("lag")]
    assert all(p["lag_s"] is not None and p["lag_s"] >= 0 for p in lagging), d
    uncommitted = [p for p in d["partitions"] if p["committed"] is None]
    assert all(p["status"] == "NO COMMIT" and p["lag"] is None for p in uncommitted), d
    assert sum(p.get("waiting", 0) for p in uncommitted) == d["waiting_uncommitted"]
    assert d["history"], d
    # Reset is refused while a member is there, allowed while stopped.
    system["ml2"] = system["procs"].start_group("ml", env={"OMNIFY_INFRA_SAMPLE_S": "2"})
    until(lambda: (lambda x: x if x and x["members"] else None)(ml_group(system)),
          timeout=60, what="ml back with a member")
    r = http("POST", f"{url}/api/infrastructure/groups/{gid}/reset",
             json_body={"to": "earliest"}, headers=auth(admin))
    assert_problem(r, 409)
    g = until(lambda: (lambda x: x if x and x["lag"] == 0 and x["uncommitted_partitions"] == 0 or
                       (x and x["lag"] == 0 and x["members"]) else None)(ml_group(system)),
              timeout=90, what="ml caught up")
    assert g["status"] == "OK", g


def test_reset_of_a_stopped_group(system, session):
    url, admin = system["url"], system["admin"]
    gid = f"{session.topic_prefix}ml"
    ml = system.get("ml2") or system["ml"]
    assert ml.stop() == 0
    until(lambda: (lambda x: x if x and x["members"] == [] else None)(ml_group(system)),
          timeout=60, what="ml without members")
    r = http("POST", f"{url}/api/infrastructure/groups/{gid}/reset",
             json_body={"to": "earliest"}, headers=auth(admin))
    assert r.status == 200, r
    assert len(r.body["partitions"]) == 8
    assert all(p["offset"] >= 0 for p in r.body["partitions"])
    # A time without at_ms is now: every partition to its end.
    r = http("POST", f"{url}/api/infrastructure/groups/{gid}/reset",
             json_body={"to": "time"}, headers=auth(admin))
    assert r.status == 200, r
    assert len(r.body["partitions"]) == 8
    assert all(p["offset"] >= 0 for p in r.body["partitions"])
    assert_problem(http("POST", f"{url}/api/infrastructure/groups/other.x/reset",
                        json_body={"to": "latest"}, headers=auth(admin)), 404)
    r = http("POST", f"{url}/api/infrastructure/groups/{gid}/reset",
             json_body={"to": "latest"}, headers=auth(admin))
    assert r.status == 200, r
    system["ml3"] = system["procs"].start_group("ml")


def test_dead_letters_are_counted_with_the_command(system, session):
    url, admin = system["url"], system["admin"]
    before = {d["group"]: d for d in get(url, admin, "/api/infrastructure/dead-letters").body["groups"]}
    produce_command(session, f"{session.topic_prefix}auth.commands",
                    "auth.no_such_command", {"x": 1})
    def counted():
        b = get(url, admin, "/api/infrastructure/dead-letters").body
        d = {x["group"]: x for x in b["groups"]}
        return d if (d["auth"]["count"] or 0) > (before["auth"]["count"] or 0) else None
    d = until(counted, timeout=60, what="a dead letter counted")
    assert d["auth"]["command"] == "omnify dlq list auth"


def test_dependencies_kafka_the_store_and_those_configured(system):
    def now():
        r = get(system["url"], system["admin"], "/api/infrastructure/dependencies")
        assert r.status == 200, r
        return {d["name"]: d for d in r.body["dependencies"]}
    deps = until(lambda: (lambda d: d if {"kong", "metabase"} <= set(d) else None)(now()),
                 timeout=30, what="the configured dependencies probed")
    assert set(deps) == {"kafka", "store", "kong", "metabase"}, deps
    assert all(d["ok"] and d["latency_ms"] >= 0 for d in deps.values()), deps
    assert deps["kong"]["status"] == 200
    # Kong down: said with why, Metabase still up; then back.
    system["deps"].admin("POST", "/deps/kong", {"state": "down"})
    try:
        kong = until(lambda: (lambda d: d if not d["ok"] else None)(now()["kong"]),
                     timeout=30, what="kong shown down")
        assert kong["status"] == 503 and "503" in kong["error"] and kong["error_at"], kong
        assert now()["metabase"]["ok"]
    finally:
        system["deps"].admin("POST", "/deps/kong", {"state": "up"})
    until(lambda: now()["kong"]["ok"], timeout=30, what="kong back up")


def dechunk(raw):
    """The payload of an HTTP/1.1 chunked body read so far (a snapshot
    bigger than a chunk spans several)."""
    out = b""
    while raw:
        size_line, sep, rest = raw.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        raw = rest[size + 2:]
    return out


def test_the_stream_sends_snapshots(system):
    host, port = system["url"][len("http://"):].split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    s.sendall((f"GET /api/infrastructure/stream HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {system['admin']}\r\n"
               f"Accept: text/event-stream\r\n\r\n").encode())
    data, deadline = b"", time.monotonic() + 30
    while data.count(b"event: infrastructure.snapshot.sampled") < 2 and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    assert b"text/event-stream" in head
    if b"chunked" in head.lower():
        body = dechunk(body)
    assert body.count(b"event: infrastructure.snapshot.sampled") >= 2, body[:500]
    line = next(l for l in body.split(b"\n") if l.startswith(b"data: "))
    snap = json.loads(line[6:])
    assert {g["group"] for g in snap["groups"] if g.get("group")} >= set(GROUPS)


def test_console_page_is_served_with_its_own_policy(system):
    r = http("GET", system["url"] + "/console")
    assert r.status == 200 and r.content_type.startswith("text/html"), r
    csp = r.header("Content-Security-Policy")
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    assert r.header("X-Frame-Options") == "DENY"
    js = http("GET", system["url"] + "/console/console.js")
    assert js.status == 200 and "javascript" in js.content_type
    assert "localStorage" not in js.body and "sessionStorage" not in js.body
    api = http("GET", system["url"] + "/health")
    assert api.header("Content-Security-Policy") == "default-src 'none'; frame-ancestors 'none'"


def test_answers_say_what_is_unknown_while_the_broker_is_down(procs, session):
    """An infrastructure group observing a broker that does not answer:
    every route answers, saying so."""
    dead = free_port()
    prefix = session.topic_prefix + "down."
    # Databases of its own too: the module's system, still running, writes
    # its own (good) samples into the session's.
    env = {"OMNIFY_TOPIC_PREFIX": prefix, "OMNIFY_MONGO_DB_PREFIX": session.db_prefix + "down_",
           "OMNIFY_INFRA_SAMPLE_S": "1",
           "OMNIFY_INFRA_KAFKA_BROKERS": f"127.0.0.1:{dead}"}
    from conftest import bin_path
    r = session.run([bin_path("omnify"), "topics", "apply"], env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        mono = procs.start_monolith(env=env)
        admin = token(session)
        def failed():
            r = get(mono.url, admin, "/api/infrastructure/groups")
            return r if r.status == 200 and r.body.get("sampled_at") and not r.body["ok"] else None
        r = until(failed, timeout=90, what="a failed sample written down")
        assert any("did not answer" in u for u in r.body["unknown"]), r.body
        for path in ROUTES:
            r = get(mono.url, admin, path)
            assert r.status == 200, r
        # The dependencies are written by the same sample, after the groups.
        def kafka_dep():
            ds = get(mono.url, admin, "/api/infrastructure/dependencies").body["dependencies"]
            return next((d for d in ds if d["name"] == "kafka"), None)
        kafka = until(kafka_dep, timeout=30, what="kafka among the dependencies")
        assert kafka["ok"] is False and kafka["error"], kafka
    finally:
        session.run([bin_path("omnify"), "topics", "delete", prefix], env=env, timeout=60)
