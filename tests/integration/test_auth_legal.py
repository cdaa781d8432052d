"""Legal documents and their acceptance, and the edge's terms check.

Documents are published the way an operator does it: an auth.legal.publish
command produced with kcat (msgpack value, plain-text headers) to
<prefix>auth.commands, with a reply-to partition this module reads back.

This module runs on topics and databases of its own: the terms it publishes
would otherwise apply to every later module of the session. Its tests run
in file order and build on each other (v1, then privacy, then v2).
"""

import re
import time

import pytest

from conftest import (assert_problem, bin_path, decode_jwt, default_claims, http, login,
                      make_jwt, wait_status)
from test_auth_rbac import (FAST_ENV, PASSWORD, Account, MailServer, produce_command,
                            read_headers, read_records, unmsgpack, uuid7, wait_reply)

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
REPLY_PARTITION = 15  # no edge of this module reads it
AGENT = "pytest-legal/1.0 (audit)"


@pytest.fixture(scope="module")
def mail():
    m = MailServer()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def legal(module_procs, session, mail):
    prefix = f"it{session.tag}lg."
    r = session.run([bin_path("omnify"), "topics", "apply"], timeout=120,
                    OMNIFY_TOPIC_PREFIX=prefix)
    assert r.returncode == 0, f"topics apply for {prefix}: {r.stdout}\n{r.stderr}"
    env = dict(FAST_ENV, **mail.env(), OMNIFY_TOPIC_PREFIX=prefix,
               OMNIFY_MONGO_DB_PREFIX=f"it{session.tag}lg_")
    p = module_procs.start_monolith(env=env)
    wait_status(p.url, "auth")
    p.prefix = prefix
    p.env = env
    yield p
    # Like the session's own topics, these go again: every partition costs
    # the shared broker open files.
    for proc in module_procs.procs:
        proc.stop()
    session.run([bin_path("omnify"), "topics", "delete", prefix], timeout=60,
                OMNIFY_TOPIC_PREFIX=prefix)


def command(session, legal, type_, body):
    """Send a Kafka-only command; (status, decoded reply body)."""
    mid = produce_command(session, legal.prefix + "auth.commands", type_, body,
                          reply_to=f"{legal.prefix}edge.replies:{REPLY_PARTITION}")
    status, _, payload = wait_reply(session, legal.prefix + "edge.replies", REPLY_PARTITION, mid)
    return status, unmsgpack(payload)


def publish(session, legal, type_, version, title=None, body=None):
    return command(session, legal, "auth.legal.publish",
                   {"type": type_, "version": version,
                    "title": title or f"{type_.title()} v{version}",
                    "body": body or f"The {type_}, version {version}. " * 20})


def wait_terms_status(acct, status, timeout=20.0, token=None):
    """POST /api/rbac/orgs (a route that needs the current terms) until it
    answers status: the edge learns new versions from auth.events."""
    deadline = time.monotonic() + timeout
    while True:
        r = acct.call("POST", "/api/rbac/orgs", {"name": "Terms Check"}, token=token)
        if r.status == status or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


# ---------------------------------------------------------------------------
# Before anything is published
# ---------------------------------------------------------------------------

def test_nothing_published_yet(session, legal):
    for t in ("terms", "privacy"):
        assert_problem(http("GET", f"{legal.url}/api/legal/documents/{t}"), 404)
    assert_problem(http("GET", f"{legal.url}/api/legal/documents/cookies"), 400, {"type"})
    status, body = command(session, legal, "auth.legal.versions", {})
    assert status == 200 and body == {"terms": 0, "privacy": 0}, body
    # No terms: routes that need them are open.
    a = Account(legal.url, name="Early Bird")
    r = a.call("POST", "/api/rbac/orgs", {"name": "Early Org"})
    assert r.status == 201, r
    # Nothing to accept.
    assert_problem(a.call("POST", "/api/legal/accept", {"type": "terms", "version": 1}), 409)


def test_publish_is_not_an_http_route(legal):
    a = Account(legal.url, name="Sneaky")
    for method, path in (("POST", "/api/legal/publish"), ("POST", "/api/legal/documents"),
                         ("POST", "/api/legal/documents/terms")):
        r = http(method, legal.url + path, headers=a.headers(),
                 json_body={"type": "terms", "version": 99, "title": "t", "body": "b"})
        assert r.status in (404, 405), r
    assert_problem(http("GET", f"{legal.url}/api/legal/documents/terms"), 404)


# ---------------------------------------------------------------------------
# Publishing
# ---------------------------------------------------------------------------

def test_publish_terms_v1(session, legal):
    status, body = publish(session, legal, "terms", 1, title="Terms of Service",
                           body="Be nice.")
    assert status == 201, body
    assert body["type"] == "terms" and body["version"] == 1, body
    r = http("GET", f"{legal.url}/api/legal/documents/terms")
    assert r.status == 200, r
    assert set(r.body) == {"type", "version", "title", "body", "published_at"}, r
    assert r.body["version"] == 1 and r.body["title"] == "Terms of Service"
    assert r.body["body"] == "Be nice."
    assert ISO_RE.match(r.body["published_at"]), r
    status, body = command(session, legal, "auth.legal.versions", {})
    assert status == 200 and body == {"terms": 1, "privacy": 0}, body


@pytest.mark.parametrize("doc,status", [
    ({"type": "terms", "version": 1, "title": "again", "body": "b"}, 409),  # not greater
    ({"type": "terms", "version": 0, "title": "t", "body": "b"}, 400),
    ({"type": "cookies", "version": 5, "title": "t", "body": "b"}, 400),
    ({"type": "terms", "version": 5, "body": "b"}, 400),
    ({"type": "terms", "version": 5, "title": "", "body": "b"}, 400),
    ({"type": "terms", "version": "5", "title": "t", "body": "b"}, 400),
    ({"type": "terms", "version": 5, "title": "t", "body": "b", "extra": 1}, 400),
])
def test_publish_rules(session, legal, doc, status):
    got, body = command(session, legal, "auth.legal.publish", doc)
    assert got == status, body
    r = http("GET", f"{legal.url}/api/legal/documents/terms")
    assert r.body["version"] == 1 and r.body["title"] == "Terms of Service", r


def test_redelivered_publish_answers_the_same(session, legal):
    """The same command twice (same id): one document, the same answer."""
    mid = uuid7()
    doc = {"type": "privacy", "version": 1, "title": "Privacy", "body": "We keep little."}
    reply_to = f"{legal.prefix}edge.replies:{REPLY_PARTITION}"
    for _ in range(2):
        produce_command(session, legal.prefix + "auth.commands", "auth.legal.publish", doc,
                        reply_to=reply_to, mid=mid)
    deadline = time.monotonic() + 30
    replies = []
    while time.monotonic() < deadline and len(replies) < 2:
        replies = [(h.get("status"), unmsgpack(p)) for h, p in
                   read_records(session, legal.prefix + "edge.replies", REPLY_PARTITION)
                   if h.get("correlation-id") == mid]
        time.sleep(0.3)
    assert len(replies) == 2, replies
    assert replies[0] == replies[1] and replies[0][0] == "201", replies
    r = http("GET", f"{legal.url}/api/legal/documents/privacy")
    assert r.status == 200 and r.body["version"] == 1 and r.body["title"] == "Privacy", r


# ---------------------------------------------------------------------------
# The terms check and acceptance
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def user(legal):
    return Account(legal.url, name="Una User", accept_terms=False)


def test_terms_required_until_accepted(legal, user):
    r = wait_terms_status(user, 403)
    assert_problem(r, 403)
    assert "terms" in r.body["title"].lower() or "terms" in r.body["detail"], r
    assert "version 1" in r.body["detail"], r
    # Routes that do not need the terms work.
    assert user.call("GET", "/api/rbac/orgs").status == 200

    old = user.token
    before = user.claims()
    r = user.call("POST", "/api/legal/accept", {"type": "terms", "version": 1},
                  headers={"User-Agent": AGENT})
    assert r.status == 200, r
    assert set(r.body) >= {"access_token", "token_type", "expires_in", "session_id"}, r
    user.token = r.body["access_token"]
    after = user.claims()
    assert after["tv"] == 1, after
    assert after["sid"] == before["sid"] and after["tid"] == before["tid"], (before, after)
    assert after["sub"] == user.id

    r = user.call("POST", "/api/rbac/orgs", {"name": "Accepted Org"})
    assert r.status == 201, r
    assert_problem(user.call("POST", "/api/rbac/orgs", {"name": "x"}, token=old), 403)


@pytest.mark.parametrize("body,status,fields", [
    ({}, 400, {"type", "version"}),
    ({"type": "terms"}, 400, {"version"}),
    ({"type": "terms", "version": 0}, 400, {"version"}),
    ({"type": "terms", "version": "1"}, 400, {"version"}),
    ({"type": "cookies", "version": 1}, 400, {"type"}),
    ({"type": "terms", "version": 1, "ip": "1.2.3.4"}, 400, {"ip"}),
    ({"type": "terms", "version": 2}, 409, None),
    ({"type": "privacy", "version": 7}, 409, None),
])
def test_accept_validation(legal, user, body, status, fields):
    assert_problem(user.call("POST", "/api/legal/accept", body), status, fields)


def test_acceptance_is_idempotent_and_audited(legal, user):
    r = user.call("POST", "/api/legal/accept", {"type": "terms", "version": 1},
                  headers={"User-Agent": "another agent"})
    assert r.status == 200, r
    r = user.call("GET", "/api/legal/acceptances")
    assert r.status == 200, r
    terms = [a for a in r.body["acceptances"] if a["type"] == "terms"]
    assert len(terms) == 1, r
    a = terms[0]
    assert set(a) == {"type", "version", "accepted_at", "ip", "user_agent"}, a
    assert a["version"] == 1
    assert a["user_agent"] == AGENT, "the first acceptance stands"
    assert a["ip"] in ("127.0.0.1", "::ffff:127.0.0.1"), a
    assert ISO_RE.match(a["accepted_at"]), a


def test_privacy_acceptance(legal, user):
    r = user.call("POST", "/api/legal/accept", {"type": "privacy", "version": 1})
    assert r.status == 200, r
    assert r.body["accepted"] is True and r.body["type"] == "privacy" and r.body["version"] == 1
    assert "access_token" not in r.body
    r = user.call("GET", "/api/legal/acceptances")
    got = [(a["type"], a["version"]) for a in r.body["acceptances"]]
    assert got == [("privacy", 1), ("terms", 1)], got  # newest first


def test_acceptances_are_my_own(legal, user):
    other = Account(legal.url, name="Otto Other", accept_terms=False)
    r = other.call("GET", "/api/legal/acceptances")
    assert r.status == 200 and r.body == {"acceptances": []}, r


def test_new_terms_version_needs_a_new_acceptance(session, legal, user):
    status, body = publish(session, legal, "terms", 2, title="Terms of Service 2")
    assert status == 201, body
    r = wait_terms_status(user, 403)
    assert_problem(r, 403)
    assert "version 2" in r.body["detail"], r
    assert_problem(user.call("POST", "/api/legal/accept", {"type": "terms", "version": 1}), 409)
    r = user.call("POST", "/api/legal/accept", {"type": "terms", "version": 2})
    assert r.status == 200, r
    user.token = r.body["access_token"]
    assert user.claims()["tv"] == 2
    assert user.call("POST", "/api/rbac/orgs", {"name": "v2 Org"}).status == 201
    # A new login carries the accepted version too.
    r = login(legal.url, user.email, PASSWORD)
    assert r.status == 200, r
    assert decode_jwt(r.body["access_token"])[1]["tv"] == 2


def test_lower_version_after_higher_is_refused(session, legal):
    status, _ = publish(session, legal, "privacy", 5)
    assert status == 201
    status, body = publish(session, legal, "privacy", 3)
    assert status == 409, body
    r = http("GET", f"{legal.url}/api/legal/documents/privacy")
    assert r.body["version"] == 5, r


def test_a_new_edge_knows_the_versions_at_start(module_procs, legal, user):
    """auth.legal.versions: an edge asks at start, so it enforces the terms
    before any auth.legal.published reaches it."""
    edge = module_procs.start_edge(name="edge2", reply_partition=1, env=legal.env)
    fresh = Account(legal.url, name="Fresh", accept_terms=False)
    r = http("POST", edge.url + "/api/rbac/orgs", json_body={"name": "x"},
             headers=fresh.headers())
    deadline = time.monotonic() + 20
    while r.status == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
        r = http("POST", edge.url + "/api/rbac/orgs", json_body={"name": "x"},
                 headers=fresh.headers())
    assert_problem(r, 403)
    assert "version 2" in r.body["detail"], r
    r = http("POST", edge.url + "/api/rbac/orgs", json_body={"name": "y"},
             headers=user.headers())
    assert r.status == 201, r


def test_events(session, legal):
    topic = legal.prefix + "auth.events"
    deadline = time.monotonic() + 30
    seen = set()
    while time.monotonic() < deadline and not {"auth.legal.published",
                                               "auth.legal.accepted"} <= seen:
        for p in range(8):
            seen |= {h.get("type") for h in read_headers(session, topic, p)}
        time.sleep(0.5)
    assert {"auth.legal.published", "auth.legal.accepted"} <= seen, seen


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/legal/accept", {"type": "terms", "version": 1}),
    ("GET", "/api/legal/acceptances", None),
])
def test_routes_need_a_valid_token(session, legal, method, path, body):
    def call(headers):
        return http(method, legal.url + path, json_body=body, headers=headers)

    assert_problem(call({}), 401)
    expired = default_claims()
    expired["exp"] = int(time.time()) - 3600
    expired["nbf"] = expired["iat"] = int(time.time()) - 7200
    assert_problem(call({"Authorization": "Bearer " + make_jwt(session.jwt_secret, expired)}),
                   401)
    good = make_jwt(session.jwt_secret)
    head, claims, sig = good.split(".")
    tampered = f"{head}.{claims}x.{sig}"
    assert_problem(call({"Authorization": "Bearer " + tampered}), 401)
    unsigned = make_jwt(None, header={"alg": "none", "typ": "JWT"}, sign=False)
    assert_problem(call({"Authorization": "Bearer " + unsigned}), 401)


def test_documents_need_no_token(legal):
    r = http("GET", f"{legal.url}/api/legal/documents/terms")
    assert r.status == 200 and r.body["version"] == 2, r
    r = http("GET", f"{legal.url}/api/legal/documents/privacy")
    assert r.status == 200 and r.body["version"] == 5, r
