"""Cross-tenant isolation: two organisations, and every route that takes an
id tried with the other organisation's ids. Each must answer 404 or 403 and
never any of the other tenant's data.

Alice owns org A (with Amy, a member); Bruno owns org B (with Beth, an
admin) and has a pending invitation for Carol. Besides real tokens, the
tests sign tokens themselves (the session's secret is known here) whose
claims lie about the tenant or the role: the edge accepts those, so they
show that the auth group checks the tenant and role against the store on
every read and write.
"""

import base64
import json
import time
import uuid

import pytest

from conftest import assert_problem, default_claims, http, make_jwt, unique_email, wait_status
from test_auth_rbac import FAST_ENV, Account, MailServer, invite, join


@pytest.fixture(scope="module")
def mail():
    m = MailServer()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def world(module_procs, mail):
    p = module_procs.start_monolith(env=dict(FAST_ENV, **mail.env()))
    wait_status(p.url, "auth")
    w = type("World", (), {})()
    w.url = p.url
    w.alice = Account(p.url, name="Alice A")
    w.amy = join(w.alice, mail, "member", name="Amy A")
    w.alice_invite, _ = invite(w.alice, unique_email("a-invitee"), "viewer", mail)
    w.bruno = Account(p.url, name="Bruno B")
    w.beth = join(w.bruno, mail, "admin", name="Beth B")
    w.carol_email = unique_email("carol")
    w.carol_invite, w.carol_token = invite(w.bruno, w.carol_email, "member", mail)
    # What must never show up in an answer to someone of org A.
    w.b_data = [w.bruno.id, w.bruno.email, w.beth.id, w.beth.email, w.carol_email,
                w.carol_invite["id"], w.bruno.name, w.beth.name]
    return w


def no_b_data(w, r):
    text = r.raw.decode("utf-8", "replace")
    leaked = [d for d in w.b_data if d in text]
    assert not leaked, f"org B's data in an answer to org A: {leaked}: {r!r}"


def b_members(w):
    r = w.bruno.call("GET", "/api/rbac/members")
    assert r.status == 200, r
    return {m["user_id"]: m["role"] for m in r.body["members"]}


def forged(session, acct, tid, role="owner"):
    """A correctly signed token for acct whose tenant and role claims are
    whatever the test says."""
    real = acct.claims()
    claims = default_claims(sub=acct.id, tid=tid, roles=(role,))
    claims["sid"] = real["sid"]
    claims["tv"] = real.get("tv", 0)
    return make_jwt(session.jwt_secret, claims)


# ---------------------------------------------------------------------------
# Lists are per org
# ---------------------------------------------------------------------------

def test_members_lists_are_per_org(world):
    w = world
    r = w.alice.call("GET", "/api/rbac/members")
    assert r.status == 200, r
    assert {m["user_id"] for m in r.body["members"]} == {w.alice.id, w.amy.id}
    no_b_data(w, r)
    assert set(b_members(w)) == {w.bruno.id, w.beth.id}


def test_invitation_lists_are_per_org(world):
    w = world
    r = w.alice.call("GET", "/api/rbac/invitations")
    assert r.status == 200, r
    assert [i["id"] for i in r.body["invitations"]] == [w.alice_invite["id"]]
    no_b_data(w, r)
    r = w.bruno.call("GET", "/api/rbac/invitations")
    assert w.alice_invite["id"] not in r.raw.decode()
    assert w.carol_invite["id"] in r.raw.decode()


def test_org_lists_are_my_own(world):
    w = world
    r = w.alice.call("GET", "/api/rbac/orgs")
    assert [o["id"] for o in r.body["orgs"]] == [w.alice.org]
    no_b_data(w, r)


# ---------------------------------------------------------------------------
# Ids of the other org
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("who", ["bruno", "beth"])
def test_patch_member_of_other_org_is_404(world, who):
    w = world
    target = getattr(w, who)
    r = w.alice.call("PATCH", f"/api/rbac/members/{target.id}", {"role": "viewer"})
    assert_problem(r, 404)
    no_b_data(w, r)
    assert b_members(w)[target.id] == ("owner" if who == "bruno" else "admin")


@pytest.mark.parametrize("who", ["bruno", "beth"])
def test_delete_member_of_other_org_is_404(world, who):
    w = world
    target = getattr(w, who)
    r = w.alice.call("DELETE", f"/api/rbac/members/{target.id}")
    assert_problem(r, 404)
    no_b_data(w, r)
    assert target.id in b_members(w)


def test_switch_to_other_org_is_404_like_no_org(world):
    w = world
    r = w.alice.call("POST", "/api/rbac/orgs/switch", {"org_id": w.bruno.org})
    assert_problem(r, 404)
    none = w.alice.call("POST", "/api/rbac/orgs/switch", {"org_id": str(uuid.uuid4())})
    assert r.body == none.body, "the answer must not tell that the org exists"
    no_b_data(w, r)
    # Amy, a member of org A only, neither.
    assert_problem(w.amy.call("POST", "/api/rbac/orgs/switch", {"org_id": w.bruno.org}), 404)


def test_accepting_other_orgs_invitation_for_another_email_is_403(world):
    w = world
    r = w.alice.call("POST", "/api/rbac/invitations/accept", {"token": w.carol_token})
    assert_problem(r, 403)
    no_b_data(w, r)
    assert w.alice.id not in b_members(w)
    assert w.bruno.org not in [o["id"] for o in w.alice.call("GET", "/api/rbac/orgs").body["orgs"]]
    # Still usable by Carol herself.
    carol = Account(w.url, name="Carol", email=w.carol_email)
    r = carol.call("POST", "/api/rbac/invitations/accept", {"token": w.carol_token})
    assert r.status == 200 and r.body["org_id"] == w.bruno.org, r


def test_operation_of_other_tenant_is_not_shown(world):
    w = world
    r = w.bruno.call("GET", "/api/rbac/members", headers={"Prefer": "respond-async"})
    assert r.status == 202, r
    location = r.header("Location")
    assert location and location.startswith("/api/operations/"), dict(r.headers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        mine = w.bruno.call("GET", location)
        if mine.status == 200 and mine.body.get("status") == "completed":
            break
        time.sleep(0.3)
    assert mine.status == 200 and w.beth.email in mine.raw.decode(), mine
    theirs = w.alice.call("GET", location)
    assert theirs.status in (403, 404), theirs
    no_b_data(w, theirs)
    # Without a token: refused, and nothing of it shown either.
    anon = http("GET", w.url + location)
    assert anon.status in (401, 404), anon
    no_b_data(w, anon)


def test_session_of_other_user_is_404(world):
    w = world
    r = w.alice.call("DELETE", f"/api/sessions/{w.bruno.sid}")
    assert_problem(r, 404)
    no_b_data(w, r)
    assert w.bruno.call("GET", "/api/rbac/orgs").status == 200


# ---------------------------------------------------------------------------
# Tokens that lie: the group checks the store
# ---------------------------------------------------------------------------

def test_forged_tenant_claim_gets_nothing(session, world):
    w = world
    token = forged(session, w.alice, w.bruno.org, "owner")
    calls = [
        ("GET", "/api/rbac/members", None),
        ("GET", "/api/rbac/invitations", None),
        ("PATCH", f"/api/rbac/members/{w.beth.id}", {"role": "viewer"}),
        ("PATCH", f"/api/rbac/members/{w.alice.id}", {"role": "owner"}),
        ("DELETE", f"/api/rbac/members/{w.beth.id}", None),
        ("DELETE", f"/api/rbac/members/{w.bruno.id}", None),
        ("POST", "/api/rbac/invitations", {"email": unique_email("x"), "role": "owner"}),
    ]
    for method, path, body in calls:
        r = w.alice.call(method, path, body, token=token)
        assert r.status in (403, 404), r
        no_b_data(w, r)
    members = b_members(w)
    assert members[w.bruno.id] == "owner" and members[w.beth.id] == "admin", members
    assert w.alice.id not in members
    pending = w.bruno.call("GET", "/api/rbac/invitations").body["invitations"]
    assert all(i["role"] != "owner" for i in pending), pending


def test_unsigned_change_of_tenant_is_401(world):
    w = world
    head, body, sig = w.alice.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["tid"] = w.bruno.org
    body2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    r = w.alice.call("GET", "/api/rbac/members", token=f"{head}.{body2}.{sig}")
    assert_problem(r, 401)
    no_b_data(w, r)


def test_forged_role_claim_is_checked_against_the_store(session, world):
    w = world
    token = forged(session, w.amy, w.alice.org, "owner")
    assert_problem(w.amy.call("PATCH", f"/api/rbac/members/{w.alice.id}", {"role": "viewer"},
                              token=token), 403)
    assert_problem(w.amy.call("DELETE", f"/api/rbac/members/{w.alice.id}", token=token), 403)
    assert_problem(w.amy.call("GET", "/api/rbac/invitations", token=token), 403)
    r = w.amy.call("POST", "/api/rbac/invitations", {"email": unique_email(), "role": "owner"},
                   token=token)
    assert_problem(r, 403)
    roles = {m["user_id"]: m["role"]
             for m in w.alice.call("GET", "/api/rbac/members").body["members"]}
    assert roles[w.alice.id] == "owner" and roles[w.amy.id] == "member"
