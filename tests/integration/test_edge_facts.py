"""Edge facts over HTTP: what the edge refuses comes from the facts auth
declares in schemas/ (a deny list of revoked sessions, the current terms
version), with the declared words, at every replica, including one that
starts after the fact; and the edge's own sources name no group.

The module runs a monolith (auth and the other groups, one edge) under a
topic prefix of its own, because it publishes terms that every user of the
prefix would then have to accept.
"""

import json
import os
import re
import time

import pytest

from conftest import REPO, assert_problem, bin_path, http, wait_status
from test_auth_rbac import FAST_ENV, Account, produce_command, unmsgpack, wait_reply

REPLY_PARTITION = 14  # no edge of this module reads it


def declared_fact(name):
    """The fact of that name as schemas/ declares it."""
    for fname in sorted(os.listdir(os.path.join(REPO, "schemas"))):
        if not fname.endswith(".json") or fname == "topics.json":
            continue
        with open(os.path.join(REPO, "schemas", fname)) as f:
            doc = json.load(f)
        for fact in doc.get("facts", []):
            if fact["name"] == name:
                return fact
    raise AssertionError(f"no fact {name} in schemas/")


@pytest.fixture(scope="module")
def world(module_procs, session):
    prefix = f"it{session.tag}ef."
    r = session.run([bin_path("omnify"), "topics", "apply"], timeout=120,
                    OMNIFY_TOPIC_PREFIX=prefix)
    assert r.returncode == 0, f"topics apply for {prefix}: {r.stdout}\n{r.stderr}"
    env = dict(FAST_ENV, OMNIFY_TOPIC_PREFIX=prefix,
               OMNIFY_MONGO_DB_PREFIX=f"it{session.tag}ef_")
    mono = module_procs.start_monolith(env=env)
    wait_status(mono.url, "auth")
    edge2 = module_procs.start_edge(name="edge2", reply_partition=1, env=env)
    yield {"mono": mono, "edge2": edge2, "env": env, "prefix": prefix,
           "procs": module_procs, "session": session}
    for proc in module_procs.procs:
        proc.stop()
    session.run([bin_path("omnify"), "topics", "delete", prefix], timeout=60,
                OMNIFY_TOPIC_PREFIX=prefix)


def until_status(method, url, status, headers, body=None, detail=None, timeout=20.0):
    """Call until the answer has status (and detail, when given): facts
    reach each replica through the events topic. The last answer."""
    deadline = time.monotonic() + timeout
    while True:
        r = http(method, url, headers=headers, json_body=body)
        if r.status == status and (detail is None or (
                isinstance(r.body, dict) and r.body.get("detail") == detail)):
            return r
        if time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_revoked_session_refused_with_the_declared_words(world):
    fact = declared_fact("revoked_session")
    assert fact["kind"] == "deny" and fact["claim"] == "sid"
    mono, edge2 = world["mono"], world["edge2"]
    a = Account(mono.url, name="Rae Revoked")
    assert a.call("GET", "/api/auth/me").status == 200
    assert http("GET", edge2.url + "/api/auth/me", headers=a.headers()).status == 200
    r = a.call("POST", "/api/auth/logout")
    assert r.status == 200, r
    for base in (mono.url, edge2.url):
        # The edge says it with the fact's words (auth's own refusal, which
        # may come first at a replica that has not heard yet, says others).
        r = until_status("GET", base + "/api/auth/me", 401, a.headers(),
                         detail=fact["detail"])
        body = assert_problem(r, 401)
        assert body["detail"] == fact["detail"], r
        assert r.header("WWW-Authenticate"), r
    # A route that needs no token ignores the revoked one.
    r = http("GET", mono.url + "/api/auth/status", headers=a.headers())
    assert r.status == 200, r
    world["revoked"] = a


def test_an_edge_started_later_knows_the_revocation(world):
    """The follower reads auth.events from a token lifetime back: an edge
    that starts after a logout refuses the session's tokens at once."""
    fact = declared_fact("revoked_session")
    a = world.get("revoked")
    if a is None:
        pytest.skip("needs test_revoked_session_refused_with_the_declared_words")
    edge3 = world["procs"].start_edge(name="edge3", reply_partition=2, env=world["env"])
    r = http("GET", edge3.url + "/api/auth/me", headers=a.headers())
    body = assert_problem(r, 401)
    assert body["detail"] == fact["detail"], r
    # Another user's tokens are still welcome there.
    b = Account(world["mono"].url, name="Bo Fine")
    assert http("GET", edge3.url + "/api/auth/me", headers=b.headers()).status == 200
    assert edge3.stop() == 0


def publish_terms(world, version):
    s = world["session"]
    mid = produce_command(s, world["prefix"] + "auth.commands", "auth.legal.publish",
                          {"type": "terms", "version": version, "title": f"Terms v{version}",
                           "body": "The terms. " * 30},
                          reply_to=f"{world['prefix']}edge.replies:{REPLY_PARTITION}")
    status, _, payload = wait_reply(s, world["prefix"] + "edge.replies", REPLY_PARTITION, mid)
    assert status == 201, unmsgpack(payload)


def test_required_terms_with_the_declared_words(world):
    fact = declared_fact("terms")
    assert fact["kind"] == "version" and fact["claim"] == "tv"
    mono, edge2 = world["mono"], world["edge2"]
    u = Account(mono.url, name="Tess Terms", accept_terms=False)
    publish_terms(world, 1)
    want = fact["detail"].replace("{value}", "1")
    for base in (mono.url, edge2.url):
        r = until_status("POST", base + "/api/rbac/orgs", 403, u.headers(), {"name": "T"})
        body = assert_problem(r, 403)
        assert body["detail"] == want, r
    # Accepting gives a token whose claim holds the version.
    r = u.call("POST", "/api/legal/accept", {"type": "terms", "version": 1})
    assert r.status == 200, r
    u.token = r.body["access_token"]
    assert u.claims()["tv"] == 1
    r = http("POST", edge2.url + "/api/rbac/orgs", headers=u.headers(), json_body={"name": "T"})
    assert r.status == 201, r
    # A newer version: the value in the words follows.
    publish_terms(world, 2)
    r = until_status("POST", edge2.url + "/api/rbac/orgs", 403, u.headers(), {"name": "T2"})
    assert assert_problem(r, 403)["detail"] == fact["detail"].replace("{value}", "2")


# ---------------------------------------------------------------------------
# The edge names no group
# ---------------------------------------------------------------------------

def c_string_literals(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # comments may explain
    return re.findall(r'"((?:[^"\\\n]|\\.)*)"', text)


def test_edge_sources_name_no_group():
    groups = set()
    for fname in os.listdir(os.path.join(REPO, "schemas")):
        if fname.endswith(".json") and fname != "topics.json":
            with open(os.path.join(REPO, "schemas", fname)) as f:
                groups.add(json.load(f)["group"])
    assert "auth" in groups
    edge_dir = os.path.join(REPO, "edge")
    offenders = []
    for fname in sorted(os.listdir(edge_dir)):
        if not fname.endswith((".c", ".h")):
            continue
        with open(os.path.join(edge_dir, fname)) as f:
            for lit in c_string_literals(f.read()):
                for g in groups:
                    if re.search(rf"(^|[/\"]){g}(\.|/|$)", lit) or f"/api/{g}" in lit:
                        offenders.append(f"{fname}: \"{lit}\" names {g}")
    assert not offenders, "\n".join(offenders)
