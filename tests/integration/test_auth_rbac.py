"""RBAC over the API: organisations, members and their roles, invitations.

A monolith with light argon2 settings and a local mail server that answers
as SendGrid's v3 mail-send does and records what it was sent, so the
invitation links can be followed as a person would. Roles are checked
twice: by the edge against the token's role (403 before anything reaches
Kafka) and by the auth group against the store.

The helpers at the top (MailServer, Account, msgpack and kcat) are used by
test_auth_legal.py and test_cross_tenant.py too.
"""

import hashlib
import json
import os
import re
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import (LOW_ARGON2, assert_problem, decode_jwt, default_claims, free_port, http,
                      login, make_jwt, signup, unique_email, wait_status)

PUBLIC_URL = "https://app.omnify.test"
MAIL_KEY = "test-mail-key-0123456789"
PASSWORD = "correct horse battery"
TOKEN_RE = re.compile(r"/invitations/accept\?token=([A-Za-z0-9_\-]+)")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Many accounts from one address: the login and signup limits stay out of
# the way here (their own tests are elsewhere).
FAST_ENV = dict(LOW_ARGON2, OMNIFY_RATE_IP_PER_MIN="100000",
                OMNIFY_RATE_ACCOUNT_PER_MIN="100000")


# ---------------------------------------------------------------------------
# A mail API that records what it is sent
# ---------------------------------------------------------------------------

class MailServer:
    """POST /v3/mail/send with a bearer key: records the JSON body, 202."""

    def __init__(self, key=MAIL_KEY):
        self.key = key
        self.mails = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                if self.path != "/v3/mail/send":
                    self.send_response(404)
                    self.end_headers()
                    return
                if self.headers.get("Authorization") != "Bearer " + outer.key:
                    self.send_response(401)
                    self.end_headers()
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with outer.lock:
                    outer.mails.append(body)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def env(self):
        return {"OMNIFY_MAIL_BASE_URL": self.url, "OMNIFY_MAIL_API_KEY": self.key,
                "OMNIFY_PUBLIC_URL": PUBLIC_URL}

    def to(self, email):
        with self.lock:
            return [m for m in self.mails
                    if any(t.get("email") == email
                           for p in m.get("personalizations", [])
                           for t in p.get("to", []))]

    @staticmethod
    def text(mail):
        return "".join(c.get("value", "") for c in mail.get("content", []))

    def wait_invitation(self, email, count=1, timeout=60.0):
        """The invitation token of the count-th invitation mail to email."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [TOKEN_RE.search(self.text(m)) for m in self.to(email)]
            found = [m for m in found if m]
            if len(found) >= count:
                return found[count - 1].group(1)
            time.sleep(0.2)
        raise AssertionError(f"no invitation mail to {email} after {timeout}s: {self.to(email)}")


# ---------------------------------------------------------------------------
# Accounts
# ---------------------------------------------------------------------------

class Account:
    """A signed-up, signed-in user; token is the current access token."""

    def __init__(self, base_url, name="Test User", email=None, accept_terms=True):
        self.url = base_url
        self.name = name
        self.email, r = signup(base_url, email=email, password=PASSWORD, name=name)
        assert r.status == 201, r
        self.id = r.body["id"]
        self.org = r.body["tenant_id"]  # the personal org
        r = login(base_url, self.email, PASSWORD)
        assert r.status == 200, r
        self.token = r.body["access_token"]
        self.refresh = r.body.get("refresh_token")
        self.sid = r.body.get("session_id")
        if accept_terms:
            accept_current_terms(self)

    def headers(self, token=None, **extra):
        h = {"Authorization": "Bearer " + (token or self.token)}
        h.update(extra)
        return h

    def call(self, method, path, body=None, token=None, headers=None):
        h = self.headers(token, **(headers or {}))
        return http(method, self.url + path, json_body=body, headers=h)

    def claims(self, token=None):
        return decode_jwt(token or self.token)[1]

    def switch(self, org_id):
        r = self.call("POST", "/api/rbac/orgs/switch", {"org_id": org_id})
        assert r.status == 200, r
        self.token = r.body["access_token"]
        return r

    def create_org(self, name="Team"):
        r = self.call("POST", "/api/rbac/orgs", {"name": name})
        assert r.status == 201, r
        return r.body["id"]


def accept_current_terms(acct):
    """Accept the current terms if any are published, as a user must before
    using routes that need them; keeps the new token."""
    r = http("GET", acct.url + "/api/legal/documents/terms")
    if r.status != 200:
        return
    a = acct.call("POST", "/api/legal/accept", {"type": "terms", "version": r.body["version"]})
    assert a.status == 200, a
    acct.token = a.body["access_token"]


def invite(admin, email, role, mail):
    """Invite email to admin's current org; returns (answer body, token)."""
    before = len([1 for m in mail.to(email) if TOKEN_RE.search(MailServer.text(m))])
    r = admin.call("POST", "/api/rbac/invitations", {"email": email, "role": role})
    assert r.status == 201, r
    return r.body, mail.wait_invitation(email, count=before + 1)


def join(owner, mail, role, name="Joiner"):
    """A new account that joined owner's current org with role, switched
    into it."""
    email = unique_email(role)
    _, token = invite(owner, email, role, mail)
    acct = Account(owner.url, name=name, email=email)
    r = acct.call("POST", "/api/rbac/invitations/accept", {"token": token})
    assert r.status == 200, r
    acct.switch(owner.claims()["tid"])
    return acct


# ---------------------------------------------------------------------------
# Commands over Kafka, as an operator sends them with kcat
# ---------------------------------------------------------------------------

def msgpack(obj):
    """A msgpack encoding of None, bools, ints, str and dicts of them."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 0x80:
            return bytes([obj])
        if -32 <= obj < 0:
            return struct.pack(">b", obj)
        if 0 <= obj < 1 << 64:
            for code, fmt, top in ((0xcc, ">B", 1 << 8), (0xcd, ">H", 1 << 16),
                                   (0xce, ">I", 1 << 32), (0xcf, ">Q", 1 << 64)):
                if obj < top:
                    return bytes([code]) + struct.pack(fmt, obj)
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, str):
        b = obj.encode("utf-8")
        n = len(b)
        if n < 32:
            return bytes([0xa0 | n]) + b
        if n < 1 << 8:
            return b"\xd9" + struct.pack(">B", n) + b
        if n < 1 << 16:
            return b"\xda" + struct.pack(">H", n) + b
        return b"\xdb" + struct.pack(">I", n) + b
    if isinstance(obj, dict):
        n = len(obj)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(msgpack(k) + msgpack(v) for k, v in obj.items())
    raise TypeError(type(obj))


def uuid7():
    ms = int(time.time() * 1000)
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return str(uuid.UUID(bytes=bytes(b)))


def brokers(session):
    return session.env().get("OMNIFY_KAFKA_BROKERS", "127.0.0.1:9092")


def produce_command(session, topic, type_, body, reply_to=None, version=1, mid=None):
    """Produce one command with kcat: headers id (a new UUIDv7 unless mid
    is given), type, schema-version, created-at (and reply-to), value
    msgpack. Returns the message id."""
    mid = mid or uuid7()
    headers = [("id", mid), ("type", type_), ("schema-version", version),
               ("created-at", int(time.time() * 1000))]
    if reply_to:
        headers.append(("reply-to", reply_to))
    kcat_produce(session, topic, msgpack(body), key=mid, headers=headers)
    return mid


def kcat_produce(session, topic, payload, key=None, headers=(), partition=None):
    """Produce one record with kcat: payload bytes, key, headers as
    (name, value) pairs in order, to a partition or by key."""
    fd, path = tempfile.mkstemp(prefix="omnify-cmd-", suffix=".mp")
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    argv = ["kcat", "-P", "-b", brokers(session), "-t", topic]
    if partition is not None:
        argv += ["-p", str(partition)]
    if key is not None:
        argv += ["-k", key]
    for name, value in headers:
        argv += ["-H", f"{name}={value}"]
    try:
        r = subprocess.run(argv + [path], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    assert r.returncode == 0, f"kcat failed: {r.stderr}"


def kcat_records(session, topic, partition=None):
    """Every record of topic (or of one partition) from the beginning, as
    kcat -J describes them (dicts: partition, offset, key, headers as a flat
    [name, value, ...] list, payload)."""
    argv = ["kcat", "-C", "-b", brokers(session), "-t", topic, "-o", "beginning",
            "-e", "-q", "-J"]
    if partition is not None:
        argv += ["-p", str(partition)]
    r = subprocess.run(argv, capture_output=True, text=True, errors="surrogateescape",
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def read_records(session, topic, partition):
    """Every record of one partition as (headers dict, payload bytes)."""
    out = []
    for rec in kcat_records(session, topic, partition):
        h = rec.get("headers") or []
        payload = (rec.get("payload") or "").encode("utf-8", "surrogateescape")
        out.append(({h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}, payload))
    return out


def read_headers(session, topic, partition):
    """The headers of every record of one partition, as dicts."""
    return [h for h, _ in read_records(session, topic, partition)]


def unmsgpack(data):
    """Decode the msgpack subset replies use here (maps, str, ints, bools,
    nil, arrays)."""
    def one(i):
        b = data[i]
        if b <= 0x7F:
            return b, i + 1
        if b >= 0xE0:
            return b - 0x100, i + 1
        if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
            if b <= 0x8F:
                n, i = b & 0x0F, i + 1
            else:
                w = 2 if b == 0xDE else 4
                n, i = int.from_bytes(data[i + 1:i + 1 + w], "big"), i + 1 + w
            out = {}
            for _ in range(n):
                k, i = one(i)
                out[k], i = one(i)
            return out, i
        if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
            if b <= 0x9F:
                n, i = b & 0x0F, i + 1
            else:
                w = 2 if b == 0xDC else 4
                n, i = int.from_bytes(data[i + 1:i + 1 + w], "big"), i + 1 + w
            out = []
            for _ in range(n):
                v, i = one(i)
                out.append(v)
            return out, i
        if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
            if b <= 0xBF:
                n, i = b & 0x1F, i + 1
            else:
                w = {0xD9: 1, 0xDA: 2, 0xDB: 4}[b]
                n, i = int.from_bytes(data[i + 1:i + 1 + w], "big"), i + 1 + w
            return data[i:i + n].decode("utf-8"), i + n
        if b in (0xCC, 0xCD, 0xCE, 0xCF):
            w = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}[b]
            return int.from_bytes(data[i + 1:i + 1 + w], "big"), i + 1 + w
        if b in (0xD0, 0xD1, 0xD2, 0xD3):
            w = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}[b]
            return int.from_bytes(data[i + 1:i + 1 + w], "big", signed=True), i + 1 + w
        if b == 0xC0:
            return None, i + 1
        if b in (0xC2, 0xC3):
            return b == 0xC3, i + 1
        raise ValueError(f"msgpack byte {b:#x} not handled")
    value, end = one(0)
    assert end == len(data), "trailing bytes"
    return value


def wait_reply(session, topic, partition, mid, timeout=30.0):
    """(status, headers, payload bytes) of the reply to command mid on
    topic:partition."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for h, payload in read_records(session, topic, partition):
            if h.get("correlation-id") == mid:
                return int(h.get("status", "0")), h, payload
        time.sleep(0.3)
    raise AssertionError(f"no reply to {mid} on {topic}:{partition}")


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mail():
    m = MailServer()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def mono(module_procs, mail):
    p = module_procs.start_monolith(env=dict(FAST_ENV, **mail.env()))
    wait_status(p.url, "auth")
    return p


@pytest.fixture
def owner(mono):
    return Account(mono.url, name="Olive Owner")


ROUTES = [
    ("POST", "/api/rbac/orgs", {"name": "x"}),
    ("GET", "/api/rbac/orgs", None),
    ("POST", "/api/rbac/orgs/switch", {"org_id": str(uuid.uuid4())}),
    ("GET", "/api/rbac/members", None),
    ("PATCH", f"/api/rbac/members/{uuid.uuid4()}", {"role": "viewer"}),
    ("DELETE", f"/api/rbac/members/{uuid.uuid4()}", None),
    ("POST", "/api/rbac/invitations", {"email": "a@example.com", "role": "viewer"}),
    ("GET", "/api/rbac/invitations", None),
    ("POST", "/api/rbac/invitations/accept", {"token": "x" * 43}),
]


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,body", ROUTES)
def test_every_route_needs_a_valid_token(mono, session, method, path, body):
    def call(headers):
        return http(method, mono.url + path, json_body=body, headers=headers)

    assert_problem(call({}), 401)
    assert_problem(call({"Authorization": "Bearer not-a-jwt"}), 401)
    expired = default_claims()
    expired["exp"] = int(time.time()) - 3600
    expired["nbf"] = expired["iat"] = int(time.time()) - 7200
    assert_problem(call({"Authorization": "Bearer " + make_jwt(session.jwt_secret, expired)}),
                   401)
    good = make_jwt(session.jwt_secret)
    head, claims, sig = good.split(".")
    tampered = f"{head}.{claims}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BB'}"
    assert_problem(call({"Authorization": "Bearer " + tampered}), 401)
    other_key = make_jwt("another-secret-that-is-long-enough-0123456789")
    assert_problem(call({"Authorization": "Bearer " + other_key}), 401)
    unsigned = make_jwt(None, header={"alg": "none", "typ": "JWT"}, sign=False)
    assert_problem(call({"Authorization": "Bearer " + unsigned}), 401)


def test_revoked_session_token_is_refused(mono):
    a = Account(mono.url, name="Rita Revoked")
    assert a.call("GET", "/api/rbac/orgs").status == 200
    r = a.call("POST", "/api/auth/logout")
    assert r.status == 200, r
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = a.call("GET", "/api/rbac/orgs")
        if r.status == 401:
            break
        time.sleep(0.2)
    assert_problem(r, 401)


# ---------------------------------------------------------------------------
# Organisations
# ---------------------------------------------------------------------------

def test_signup_gives_a_personal_org(owner):
    r = owner.call("GET", "/api/rbac/orgs")
    assert r.status == 200, r
    assert len(r.body["orgs"]) == 1, r
    org = r.body["orgs"][0]
    assert org["id"] == owner.org
    assert org["role"] == "owner"
    assert org["current"] is True
    assert set(org) == {"id", "name", "role", "joined_at", "current"}, org


def test_create_org_and_switch(owner):
    before = owner.claims()
    r = owner.call("POST", "/api/rbac/orgs", {"name": "Acme Marketing"})
    assert r.status == 201, r
    assert r.body["name"] == "Acme Marketing" and r.body["role"] == "owner", r
    assert UUID_RE.match(r.body["id"]), r
    org = r.body["id"]
    assert org != owner.org

    orgs = owner.call("GET", "/api/rbac/orgs").body["orgs"]
    assert {o["id"]: o["role"] for o in orgs} == {owner.org: "owner", org: "owner"}
    assert [o["current"] for o in orgs if o["id"] == org] == [False]

    r = owner.switch(org)
    assert set(r.body) >= {"access_token", "token_type", "expires_in", "session_id"}, r
    claims = owner.claims()
    assert claims["tid"] == org
    assert claims["roles"] == ["owner"]
    assert claims["sub"] == owner.id
    assert claims["sid"] == before["sid"], "switching keeps the session"

    members = owner.call("GET", "/api/rbac/members").body["members"]
    assert [(m["user_id"], m["role"], m["email"]) for m in members] == \
        [(owner.id, "owner", owner.email)]
    orgs = owner.call("GET", "/api/rbac/orgs").body["orgs"]
    assert [o["id"] for o in orgs if o["current"]] == [org]

    # And back again.
    owner.switch(owner.org)
    assert owner.claims()["tid"] == owner.org


@pytest.mark.parametrize("body,fields", [
    ({}, {"name"}),
    ({"name": ""}, {"name"}),
    ({"name": "x" * 101}, {"name"}),
    ({"name": 7}, {"name"}),
    ({"name": "ok", "owner": "someone"}, {"owner"}),
])
def test_create_org_validation(owner, body, fields):
    assert_problem(owner.call("POST", "/api/rbac/orgs", body), 400, fields)


@pytest.mark.parametrize("body,status,fields", [
    ({}, 400, {"org_id"}),
    ({"org_id": "not-a-uuid"}, 400, {"org_id"}),
    ({"org_id": str(uuid.uuid4())}, 404, None),
])
def test_switch_validation(owner, body, status, fields):
    assert_problem(owner.call("POST", "/api/rbac/orgs/switch", body), status, fields)


def test_switch_to_an_org_i_left_is_404(mono, owner, mail):
    member = join(owner, mail, "member")
    org = owner.claims()["tid"]
    r = member.call("DELETE", f"/api/rbac/members/{member.id}")
    assert r.status == 200, r
    member.token = login(mono.url, member.email, PASSWORD).body["access_token"]
    assert_problem(member.call("POST", "/api/rbac/orgs/switch", {"org_id": org}), 404)
    assert [o["id"] for o in member.call("GET", "/api/rbac/orgs").body["orgs"]] == [member.org]


# ---------------------------------------------------------------------------
# Invitations
# ---------------------------------------------------------------------------

def test_invitation_flow(mono, owner, mail):
    email = unique_email("bob")
    r = owner.call("POST", "/api/rbac/invitations", {"email": email.upper(), "role": "member"})
    assert r.status == 201, r
    inv = r.body
    assert set(inv) == {"id", "org_id", "email", "role", "expires_at"}, inv
    assert inv["email"] == email and inv["role"] == "member" and inv["org_id"] == owner.org
    assert "token" not in json.dumps(inv)

    token = mail.wait_invitation(email)
    text = MailServer.text(mail.to(email)[-1])
    assert f"{PUBLIC_URL}/invitations/accept?token={token}" in text
    assert token not in r.raw.decode()

    pending = owner.call("GET", "/api/rbac/invitations")
    assert pending.status == 200, pending
    listed = [i for i in pending.body["invitations"] if i["id"] == inv["id"]]
    assert len(listed) == 1, pending
    assert listed[0]["email"] == email and listed[0]["role"] == "member"
    assert listed[0]["invited_by"] == owner.id
    assert token not in pending.raw.decode()

    bob = Account(mono.url, name="Bob", email=email)
    r = bob.call("POST", "/api/rbac/invitations/accept", {"token": token})
    assert r.status == 200, r
    assert r.body == {"org_id": owner.org, "role": "member"}, r

    members = {m["user_id"]: m for m in owner.call("GET", "/api/rbac/members").body["members"]}
    assert members[bob.id]["role"] == "member"
    assert members[bob.id]["email"] == email and members[bob.id]["name"] == "Bob"
    assert set(members[bob.id]) == {"user_id", "email", "name", "role", "joined_at"}

    # Used: gone from the pending list, and no second use.
    pending = owner.call("GET", "/api/rbac/invitations").body["invitations"]
    assert inv["id"] not in [i["id"] for i in pending]
    assert_problem(bob.call("POST", "/api/rbac/invitations/accept", {"token": token}), 410)

    # The secret went by mail only: neither it nor its hash is in a log.
    log = mono.log_text()
    assert token not in log
    assert hashlib.sha256(token.encode()).hexdigest() not in log

    orgs = {o["id"]: o for o in bob.call("GET", "/api/rbac/orgs").body["orgs"]}
    assert orgs[owner.org]["role"] == "member" and orgs[owner.org]["current"] is False
    bob.switch(owner.org)
    assert bob.claims()["roles"] == ["member"] and bob.claims()["tid"] == owner.org


def test_invitation_for_someone_else_is_refused_and_stays_usable(mono, owner, mail):
    email = unique_email("invitee")
    _, token = invite(owner, email, "viewer", mail)
    carol = Account(mono.url, name="Carol")
    assert_problem(carol.call("POST", "/api/rbac/invitations/accept", {"token": token}), 403)
    assert owner.org not in [o["id"] for o in carol.call("GET", "/api/rbac/orgs").body["orgs"]]
    invitee = Account(mono.url, name="Invitee", email=email)
    r = invitee.call("POST", "/api/rbac/invitations/accept", {"token": token})
    assert r.status == 200 and r.body["role"] == "viewer", r


def test_invitation_of_a_member_is_409(mono, owner, mail):
    member = join(owner, mail, "member")
    r = owner.call("POST", "/api/rbac/invitations", {"email": member.email, "role": "admin"})
    assert_problem(r, 409)


def test_accepting_twice_into_the_same_org_is_409(mono, owner, mail):
    email = unique_email("twice")
    _, first = invite(owner, email, "viewer", mail)
    _, second = invite(owner, email, "member", mail)
    acct = Account(mono.url, email=email)
    assert acct.call("POST", "/api/rbac/invitations/accept", {"token": first}).status == 200
    assert_problem(acct.call("POST", "/api/rbac/invitations/accept", {"token": second}), 409)


@pytest.mark.parametrize("body,fields", [
    ({}, {"email", "role"}),
    ({"email": "not an email", "role": "member"}, {"email"}),
    ({"email": "a@example.com", "role": "superuser"}, {"role"}),
    ({"email": "a@example.com", "role": "member", "org_id": str(uuid.uuid4())}, {"org_id"}),
])
def test_invitation_validation(owner, body, fields):
    assert_problem(owner.call("POST", "/api/rbac/invitations", body), 400, fields)


@pytest.mark.parametrize("body,status,fields", [
    ({}, 400, {"token"}),
    ({"token": "short"}, 400, {"token"}),
    ({"token": "x" * 43}, 410, None),
])
def test_accept_validation(owner, body, status, fields):
    assert_problem(owner.call("POST", "/api/rbac/invitations/accept", body), status, fields)


def test_only_owners_invite_owners(mono, owner, mail):
    admin = join(owner, mail, "admin")
    r = admin.call("POST", "/api/rbac/invitations", {"email": unique_email(), "role": "owner"})
    assert_problem(r, 403)
    body, token = invite(owner, unique_email("co"), "owner", mail)
    assert body["role"] == "owner"
    r = admin.call("POST", "/api/rbac/invitations", {"email": unique_email(), "role": "admin"})
    assert r.status == 201, r


# ---------------------------------------------------------------------------
# Roles
# ---------------------------------------------------------------------------

def test_viewer_and_member_cannot_use_admin_routes(mono, owner, mail):
    for role in ("viewer", "member"):
        acct = join(owner, mail, role)
        assert acct.claims()["roles"] == [role]
        assert acct.call("GET", "/api/rbac/members").status == 200
        for method, path, body in [
            ("PATCH", f"/api/rbac/members/{owner.id}", {"role": "viewer"}),
            ("POST", "/api/rbac/invitations", {"email": unique_email(), "role": "viewer"}),
            ("GET", "/api/rbac/invitations", None),
        ]:
            r = acct.call(method, path, body)
            assert_problem(r, 403)
            assert "admin" in r.body["detail"], r
        # Removing someone else needs admin too (checked by the group).
        assert_problem(acct.call("DELETE", f"/api/rbac/members/{owner.id}"), 403)


def test_role_changes(mono, owner, mail):
    admin = join(owner, mail, "admin")
    member = join(owner, mail, "member")

    r = admin.call("PATCH", f"/api/rbac/members/{member.id}", {"role": "viewer"})
    assert r.status == 200, r
    assert r.body == {"org_id": owner.org, "user_id": member.id, "role": "viewer",
                      "previous_role": "member"}, r
    roles = {m["user_id"]: m["role"] for m in owner.call("GET", "/api/rbac/members").body["members"]}
    assert roles[member.id] == "viewer"

    # The same role again changes nothing.
    r = admin.call("PATCH", f"/api/rbac/members/{member.id}", {"role": "viewer"})
    assert r.status == 200 and r.body["role"] == "viewer", r

    # Admins cannot grant or take owner, nor touch owners.
    assert_problem(admin.call("PATCH", f"/api/rbac/members/{member.id}", {"role": "owner"}), 403)
    assert_problem(admin.call("PATCH", f"/api/rbac/members/{owner.id}", {"role": "admin"}), 403)
    assert_problem(admin.call("DELETE", f"/api/rbac/members/{owner.id}"), 403)

    # Owners can.
    r = owner.call("PATCH", f"/api/rbac/members/{admin.id}", {"role": "owner"})
    assert r.status == 200 and r.body["role"] == "owner", r


def test_role_from_the_store_wins_over_the_token(mono, owner, mail):
    """A demoted admin's token still says admin; the group checks the store."""
    admin = join(owner, mail, "admin")
    member = join(owner, mail, "member")
    assert owner.call("PATCH", f"/api/rbac/members/{admin.id}", {"role": "viewer"}).status == 200
    assert admin.claims()["roles"] == ["admin"]
    assert_problem(admin.call("PATCH", f"/api/rbac/members/{member.id}", {"role": "viewer"}), 403)
    assert_problem(admin.call("GET", "/api/rbac/invitations"), 403)
    assert_problem(admin.call("POST", "/api/rbac/invitations",
                              {"email": unique_email(), "role": "viewer"}), 403)


@pytest.mark.parametrize("path_id,body,status,fields", [
    ("not-a-uuid", {"role": "viewer"}, 400, {"user_id"}),
    (None, {}, 400, {"role"}),
    (None, {"role": "king"}, 400, {"role"}),
    (None, {"role": "viewer", "extra": 1}, 400, {"extra"}),
    ("random", {"role": "viewer"}, 404, None),
])
def test_role_change_validation(owner, path_id, body, status, fields):
    target = {None: owner.id, "random": str(uuid.uuid4())}.get(path_id, path_id)
    r = owner.call("PATCH", f"/api/rbac/members/{target}", body)
    assert_problem(r, status, fields)


def test_last_owner_cannot_be_demoted_or_leave(mono, owner, mail):
    r = owner.call("PATCH", f"/api/rbac/members/{owner.id}", {"role": "admin"})
    assert_problem(r, 409)
    assert "last owner" in r.body["detail"], r
    r = owner.call("DELETE", f"/api/rbac/members/{owner.id}")
    assert_problem(r, 409)
    assert "last owner" in r.body["detail"], r
    roles = {m["user_id"]: m["role"] for m in owner.call("GET", "/api/rbac/members").body["members"]}
    assert roles == {owner.id: "owner"}

    # With a second owner, the first may step down, and the second may not
    # then leave.
    second = join(owner, mail, "admin")
    assert owner.call("PATCH", f"/api/rbac/members/{second.id}", {"role": "owner"}).status == 200
    r = owner.call("PATCH", f"/api/rbac/members/{owner.id}", {"role": "admin"})
    assert r.status == 200 and r.body["role"] == "admin", r
    second.switch(owner.org)  # a token that says owner
    assert_problem(second.call("DELETE", f"/api/rbac/members/{second.id}"), 409)
    assert_problem(second.call("PATCH", f"/api/rbac/members/{second.id}", {"role": "member"}),
                   409)


def test_remove_member_ends_their_sessions_in_the_org(mono, owner, mail):
    admin = join(owner, mail, "admin")
    member = join(owner, mail, "member")
    personal = login(mono.url, member.email, PASSWORD).body["access_token"]

    r = admin.call("DELETE", f"/api/rbac/members/{member.id}")
    assert r.status == 200, r
    assert r.body == {"org_id": owner.org, "user_id": member.id, "removed": True}, r
    ids = [m["user_id"] for m in owner.call("GET", "/api/rbac/members").body["members"]]
    assert member.id not in ids

    # The session that worked in the org is over, at the edge too.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = member.call("GET", "/api/rbac/members")
        if r.status == 401:
            break
        time.sleep(0.2)
    assert_problem(r, 401)
    # A session in another org goes on.
    r = member.call("GET", "/api/rbac/orgs", token=personal)
    assert r.status == 200, r
    assert [o["id"] for o in r.body["orgs"]] == [member.org]

    # Removing again: no such member.
    assert_problem(admin.call("DELETE", f"/api/rbac/members/{member.id}"), 404)


def test_member_may_leave_and_be_invited_back(mono, owner, mail):
    member = join(owner, mail, "member")
    r = member.call("DELETE", f"/api/rbac/members/{member.id}")
    assert r.status == 200, r
    ids = [m["user_id"] for m in owner.call("GET", "/api/rbac/members").body["members"]]
    assert member.id not in ids

    _, token = invite(owner, member.email, "viewer", mail)
    member.token = login(mono.url, member.email, PASSWORD).body["access_token"]
    r = member.call("POST", "/api/rbac/invitations/accept", {"token": token})
    assert r.status == 200 and r.body["role"] == "viewer", r
    roles = {m["user_id"]: m["role"] for m in owner.call("GET", "/api/rbac/members").body["members"]}
    assert roles[member.id] == "viewer"


def test_admin_removes_admin_but_only_owner_removes_owner(mono, owner, mail):
    a1 = join(owner, mail, "admin")
    a2 = join(owner, mail, "admin")
    assert a1.call("DELETE", f"/api/rbac/members/{a2.id}").status == 200
    co = join(owner, mail, "admin")
    assert owner.call("PATCH", f"/api/rbac/members/{co.id}", {"role": "owner"}).status == 200
    assert_problem(a1.call("DELETE", f"/api/rbac/members/{co.id}"), 403)
    assert owner.call("DELETE", f"/api/rbac/members/{co.id}").status == 200


@pytest.mark.parametrize("target,status,fields", [
    ("not-a-uuid", 400, {"user_id"}),
    ("random", 404, None),
])
def test_remove_validation(owner, target, status, fields):
    target = str(uuid.uuid4()) if target == "random" else target
    assert_problem(owner.call("DELETE", f"/api/rbac/members/{target}"), status, fields)


def test_events_are_published(mono, session, owner, mail):
    """The org's changes reach auth.events for analytics."""
    member = join(owner, mail, "member")
    owner.call("PATCH", f"/api/rbac/members/{member.id}", {"role": "viewer"})
    owner.call("DELETE", f"/api/rbac/members/{member.id}")
    want = {"auth.org.created", "auth.org.member_added", "auth.org.invitation_created",
            "auth.org.member_role_changed", "auth.org.member_removed"}
    owner.create_org("Events Inc")
    topic = session.topic_prefix + "auth.events"
    deadline = time.monotonic() + 30
    seen = set()
    while time.monotonic() < deadline and not want <= seen:
        for p in range(8):
            seen |= {h.get("type") for h in read_headers(session, topic, p)}
        time.sleep(0.5)
    assert want <= seen, want - seen
