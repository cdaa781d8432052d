"""The monolith: `omnify monolith` runs the edge and all seven groups as
threads of one process. Default argon2 parameters here (the real cost)."""

import hashlib
import hmac
import http.client as httpclient
import re
import socket
import threading
import time

import pytest

from conftest import (GROUPS, assert_problem, b64url, binary_version, decode_jwt, http,
                      login, signup, unique_email, wait_all_status)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@pytest.fixture(scope="module")
def mono(module_procs):
    p = module_procs.start_monolith()
    # The groups join their consumer groups in the background: wait for all.
    p.statuses = wait_all_status(p.url)
    return p


@pytest.fixture(scope="module")
def account(mono):
    """One account made through signup, with the default argon2 cost."""
    password = "s3cret-Passw0rd!"
    email, r = signup(mono.url, password=password, name="Ada Lovelace")
    assert r.status == 201, r
    return {"email": email, "password": password, "user": r.body}


def test_signup_creates_account(mono, account):
    u = account["user"]
    # The contract's fields (more are allowed); never anything secret.
    missing = {"id", "email", "name", "tenant_id", "created_at"} - set(u)
    assert not missing, f"signup answer lacks {sorted(missing)}: {u}"
    assert not any("password" in k or "hash" in k for k in u), u
    assert u["email"] == account["email"]
    assert u["name"] == "Ada Lovelace"
    assert UUID_RE.match(u["id"]), u
    assert UUID_RE.match(u["tenant_id"]), u
    assert u["id"] != u["tenant_id"]
    assert ISO_RE.match(u["created_at"]), u
    # Last, so the checks above run whatever happens here.
    assert "roles" in u, f"signup answer lacks roles (contract: id,email,name,tenant_id,roles,created_at): {u}"
    assert isinstance(u["roles"], list) and u["roles"], u


def test_signup_answer_is_json_with_request_id(mono):
    _, r = signup(mono.url)
    assert r.status == 201, r
    assert r.content_type.startswith("application/json"), r
    assert UUID_RE.match(r.header("X-Request-Id") or ""), dict(r.headers)


def test_login_and_me_round_trip(mono, account, session):
    r = login(mono.url, account["email"], account["password"])
    assert r.status == 200, r
    assert r.content_type.startswith("application/json"), r
    missing = {"access_token", "token_type", "expires_in"} - set(r.body)
    assert not missing, f"login answer lacks {sorted(missing)}: {r!r}"
    assert r.body["token_type"] == "Bearer"
    assert isinstance(r.body["expires_in"], int) and r.body["expires_in"] > 0, r
    token = r.body["access_token"]

    # The token is an HS256 JWT signed with the configured secret, for this user.
    header, claims, sig = decode_jwt(token)
    assert header.get("alg") == "HS256", header
    assert header.get("kid") == "k1", header
    head_b64, body_b64, _ = token.split(".")
    want = b64url(hmac.new(session.jwt_secret.encode(), f"{head_b64}.{body_b64}".encode(),
                           hashlib.sha256).digest())
    assert sig == want, "the token is not signed with OMNIFY_JWT_SECRET"
    assert claims.get("iss") == "omnify" and claims.get("aud") == "omnify-api", claims
    assert claims.get("sub") == account["user"]["id"], claims
    assert claims.get("tid") == account["user"]["tenant_id"], claims
    now = time.time()
    assert claims["exp"] - now == pytest.approx(r.body["expires_in"], abs=60), claims

    me = http("GET", mono.url + "/api/auth/me", headers={"Authorization": "Bearer " + token})
    assert me.status == 200, me
    for k in ("id", "email", "name", "tenant_id", "created_at", "roles"):
        assert k in me.body, f"/api/auth/me lacks {k}: {me.body}"
        assert me.body[k] == account["user"].get(k), (k, me.body, account["user"])
    assert not any("password" in k or "hash" in k for k in me.body), me.body


def test_login_email_is_case_insensitive(mono, account):
    r = login(mono.url, account["email"].upper(), account["password"])
    assert r.status == 200, r


def test_me_without_token_is_401(mono):
    r = http("GET", mono.url + "/api/auth/me")
    assert_problem(r, 401)
    assert (r.header("WWW-Authenticate") or "").lower().startswith("bearer"), dict(r.headers)


def test_duplicate_signup_is_409(mono, account):
    _, r = signup(mono.url, email=account["email"], password="another password", name="X")
    assert_problem(r, 409)
    # Still only the first account: its password logs in, the second does not.
    assert login(mono.url, account["email"], account["password"]).status == 200
    assert login(mono.url, account["email"], "another password").status == 401


def test_duplicate_signup_other_case_is_409(mono, account):
    _, r = signup(mono.url, email=account["email"].upper(), password="another password",
                  name="X")
    assert_problem(r, 409)


def test_wrong_password_and_unknown_email_answer_alike(mono, account):
    wrong = login(mono.url, account["email"], "not the password")
    unknown = login(mono.url, unique_email("nobody"), "not the password")
    assert_problem(wrong, 401)
    assert_problem(unknown, 401)
    assert wrong.raw == unknown.raw, (wrong, unknown)
    assert wrong.content_type == unknown.content_type
    # Nothing in the body that names the email or says which case it was.
    assert account["email"] not in wrong.raw.decode()


def test_status_of_every_group_is_the_monolith(mono):
    version = binary_version()
    host = socket.gethostname()
    for g in GROUPS:
        r = http("GET", f"{mono.url}/api/{g}/status")
        assert r.status == 200, r
        b = r.body
        assert set(b) >= {"group", "instance_id", "pid", "host", "mode", "uptime_s",
                          "version"}, b
        assert b["group"] == g, b
        assert b["mode"] == "monolith", b
        assert b["pid"] == mono.pid, (b, mono.pid)
        assert b["host"] == host, b
        assert b["version"] == version, b
        assert isinstance(b["uptime_s"], (int, float)) and b["uptime_s"] >= 0, b
        assert str(mono.pid) in b["instance_id"], b


def test_ops_of_every_group_on_the_edge_port(mono):
    for g in GROUPS:
        h = http("GET", f"{mono.url}/ops/{g}/health")
        assert h.status == 200, h
        assert h.body == {"status": "ok", "group": g}, h
        rd = http("GET", f"{mono.url}/ops/{g}/ready")
        assert rd.status == 200, rd
        assert rd.body.get("group") == g and rd.body.get("status") == "ready", rd
        m = http("GET", f"{mono.url}/ops/{g}/metrics")
        assert m.status == 200, m
        assert m.content_type.startswith("text/plain"), m
        assert "# TYPE" in m.body, m


def test_ops_of_unknown_group_is_404(mono):
    assert_problem(http("GET", f"{mono.url}/ops/nosuchgroup/health"), 404)


def test_health_ready_metrics_openapi(mono):
    h = http("GET", mono.url + "/health")
    assert h.status == 200 and h.body.get("status") == "ok", h
    rd = http("GET", mono.url + "/ready")
    assert rd.status == 200, rd
    assert rd.body.get("kafka") is True and rd.body.get("store") is True, rd

    m = http("GET", mono.url + "/metrics")
    assert m.status == 200, m
    assert m.content_type.startswith("text/plain"), m
    assert "# TYPE omnify_http_requests_total counter" in m.body, m
    # Requests made above are counted, by route and status.
    assert re.search(r'omnify_http_requests_total\{route="auth\.status",status="200"\} [1-9]',
                     m.body), m.body[:3000]
    assert re.search(r'omnify_messages_handled_total\{group="auth",type="auth\.signup",'
                     r'result="ok"\} [1-9]', m.body), m.body[:3000]

    o = http("GET", mono.url + "/openapi.json")
    assert o.status == 200, o
    assert o.content_type.startswith("application/json"), o
    assert o.body.get("openapi") == "3.1.0", o
    paths = o.body.get("paths", {})
    for p in ["/api/auth/signup", "/api/auth/login", "/api/auth/me",
              "/api/operations/{id}"] + [f"/api/{g}/status" for g in GROUPS]:
        assert p in paths, (p, sorted(paths))
    assert "post" in paths["/api/auth/signup"], paths["/api/auth/signup"]
    assert "get" in paths["/api/auth/me"], paths["/api/auth/me"]


def test_keep_alive_connection_serves_several_requests(mono):
    # Answers that need no body (built-ins, refusals of GETs, group replies)
    # leave the connection open for the next request.
    conn = httpclient.HTTPConnection("127.0.0.1", mono.port, timeout=30)
    try:
        for path, status in [("/health", 200), ("/nope", 404), ("/api/auth/status", 200),
                             ("/api/auth/me", 401), ("/ready", 200)]:
            conn.request("GET", path)
            r = conn.getresponse()
            r.read()
            assert r.status == status, (path, r.status)
    finally:
        conn.close()


def test_idempotency_key_gives_same_result_once(mono):
    """DESIGN: the same Idempotency-Key from the same tenant gives the same
    result and one side effect. A retried signup must not answer 409."""
    email = unique_email("idem")
    key = "idem-" + email
    body = {"email": email, "password": "password-123", "name": "Idem"}
    first = http("POST", mono.url + "/api/auth/signup", json_body=body,
                 headers={"Idempotency-Key": key})
    assert first.status == 201, first
    second = http("POST", mono.url + "/api/auth/signup", json_body=body,
                  headers={"Idempotency-Key": key})
    assert second.status == 201, second
    assert second.body == first.body, (first, second)


def test_sigterm_exits_0(mono):
    # A request in flight (argon2 at its default cost takes a while) gets
    # its answer while the monolith drains.
    result = {}

    def slow_signup():
        try:
            result["r"] = signup(mono.url)[1]
        except Exception as e:  # noqa: BLE001 - asserted below
            result["error"] = e
    t = threading.Thread(target=slow_signup)
    t.start()
    time.sleep(0.15)
    t0 = time.monotonic()
    rc = mono.stop(timeout=30)
    took = time.monotonic() - t0
    t.join(30)
    assert rc == 0, f"exit status {rc} after SIGTERM (took {took:.1f}s)"
    assert took < 20, took
    assert "error" not in result, f"in-flight request failed: {result.get('error')!r}"
    assert result["r"].status == 201, result["r"]
    lines = [l.get("msg", "") for l in mono.log_lines()]
    assert any("stopping" in m for m in lines), lines[-10:]
