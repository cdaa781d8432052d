"""Sessions and the edge's protections: rotating refresh tokens with reuse
detection, revocation seen at another edge replica, logout, listing and
revoking sessions, lock-out, rate limits, CORS, the password policy, and no
secret in any log line."""

import time

import pytest

from conftest import (LOW_ARGON2, assert_problem, http, login, signup, unique_email,
                      wait_ready, wait_status)

PASSWORD = "Sessions-test-pw 1"


@pytest.fixture(scope="module")
def system(module_procs):
    auth = module_procs.start_group("auth", wait=False, OMNIFY_LOGIN_MAX_FAILURES="3",
                                    OMNIFY_LOGIN_LOCK_S="3", **LOW_ARGON2)
    edges = [module_procs.start_edge(name=f"edge{i}", reply_partition=i)
             for i in (0, 1)]
    limited = module_procs.start_edge(name="edge-limited", reply_partition=2,
                                      OMNIFY_RATE_ACCOUNT_PER_MIN="3",
                                      OMNIFY_CORS_ORIGINS="https://app.example.com")
    wait_ready(auth, auth.url + "/ready")
    for e in edges + [limited]:
        wait_status(e.url, "auth")
    return {"auth": auth, "edges": edges, "limited": limited, "procs": module_procs}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def new_user(base):
    email, r = signup(base, password=PASSWORD)
    assert r.status == 201, r
    r = login(base, email, PASSWORD, headers={"User-Agent": "pytest-agent/1"})
    assert r.status == 200, r
    return email, r.body


def test_login_answers_access_refresh_and_session(system):
    base = system["edges"][0].url
    _, tokens = new_user(base)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] > 0
    assert tokens["refresh_token"].startswith(tokens["session_id"] + ".")
    r = http("GET", base + "/api/auth/me", headers=bearer(tokens["access_token"]))
    assert r.status == 200, r


def test_refresh_rotates_and_reuse_revokes_the_family_at_every_edge(system):
    e0, e1 = system["edges"]
    _, tokens = new_user(e0.url)
    first = tokens["refresh_token"]
    r = http("POST", e0.url + "/api/auth/refresh", json_body={"refresh_token": first})
    assert r.status == 200, r
    second = r.body["refresh_token"]
    assert second != first and r.body["session_id"] == tokens["session_id"]
    access = r.body["access_token"]
    assert http("GET", e1.url + "/api/auth/me", headers=bearer(access)).status == 200
    # The old refresh token comes back: someone else has it.
    r = http("POST", e0.url + "/api/auth/refresh", json_body={"refresh_token": first})
    assert_problem(r, 401)
    assert "reuse" in r.body["detail"]
    # The whole session is over, the newest refresh token too ...
    r = http("POST", e0.url + "/api/auth/refresh", json_body={"refresh_token": second})
    assert_problem(r, 401)
    # ... and its access token fails at the other replica within moments.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = http("GET", e1.url + "/api/auth/me", headers=bearer(access))
        if r.status == 401:
            break
        time.sleep(0.2)
    assert_problem(r, 401)


def test_refresh_rejects_garbage(system):
    base = system["edges"][0].url
    r = http("POST", base + "/api/auth/refresh",
             json_body={"refresh_token": "0" * 36 + "." + "x" * 43})
    assert_problem(r, 401)
    r = http("POST", base + "/api/auth/refresh", json_body={"refresh_token": "short"})
    assert_problem(r, 400, fields={"refresh_token"})


def test_logout_ends_the_session(system):
    e0, e1 = system["edges"]
    _, tokens = new_user(e0.url)
    r = http("POST", e0.url + "/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert r.status == 200 and r.body == {"logged_out": True}, r
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = http("GET", e1.url + "/api/auth/me", headers=bearer(tokens["access_token"]))
        if r.status == 401:
            break
        time.sleep(0.2)
    assert_problem(r, 401)
    r = http("POST", e0.url + "/api/auth/refresh",
             json_body={"refresh_token": tokens["refresh_token"]})
    assert_problem(r, 401)


def test_list_and_revoke_sessions(system):
    base = system["edges"][0].url
    email, first = new_user(base)
    second = login(base, email, PASSWORD, headers={"User-Agent": "second-device/2"}).body
    third = login(base, email, PASSWORD).body
    r = http("GET", base + "/api/sessions", headers=bearer(first["access_token"]))
    assert r.status == 200, r
    sessions = {s["id"]: s for s in r.body["sessions"]}
    assert {first["session_id"], second["session_id"], third["session_id"]} <= set(sessions)
    assert sessions[first["session_id"]]["current"] is True
    assert sessions[second["session_id"]]["device"] == "second-device/2"
    assert sessions[second["session_id"]]["ip"] == "127.0.0.1"
    # Revoke one.
    r = http("DELETE", base + f"/api/sessions/{second['session_id']}",
             headers=bearer(first["access_token"]))
    assert r.status == 200, r
    r = http("POST", base + "/api/auth/refresh",
             json_body={"refresh_token": second["refresh_token"]})
    assert_problem(r, 401)
    # Revoke all others: the current one stays.
    r = http("POST", base + "/api/sessions/revoke-others",
             headers=bearer(first["access_token"]))
    assert r.status == 200, r
    r = http("POST", base + "/api/auth/refresh",
             json_body={"refresh_token": third["refresh_token"]})
    assert_problem(r, 401)
    r = http("POST", base + "/api/auth/refresh",
             json_body={"refresh_token": first["refresh_token"]})
    assert r.status == 200, r


def test_cannot_revoke_another_users_session(system):
    base = system["edges"][0].url
    _, mine = new_user(base)
    _, theirs = new_user(base)
    r = http("DELETE", base + f"/api/sessions/{theirs['session_id']}",
             headers=bearer(mine["access_token"]))
    assert_problem(r, 404)
    r = http("POST", base + "/api/auth/refresh",
             json_body={"refresh_token": theirs["refresh_token"]})
    assert r.status == 200, r


def test_sessions_need_a_token(system):
    base = system["edges"][0].url
    assert_problem(http("GET", base + "/api/sessions"), 401)
    assert_problem(http("POST", base + "/api/sessions/revoke-others"), 401)


def test_lock_out_after_failures_then_timed_release(system):
    base = system["edges"][0].url
    email, _ = new_user(base)
    for _ in range(3):
        assert_problem(login(base, email, "Wrong password 1"), 401)
    r = login(base, email, PASSWORD)
    body = assert_problem(r, 429)
    assert "locked" in body["detail"], body
    assert int(r.header("Retry-After")) >= 1, r.headers
    time.sleep(3.5)
    assert login(base, email, PASSWORD).status == 200


def test_rate_limit_per_account(system):
    base = system["limited"].url
    email, _ = new_user(system["edges"][0].url)
    # Three good logins use the account's three tokens a minute ...
    assert [login(base, email, PASSWORD).status for _ in range(3)] == [200, 200, 200]
    # ... the fourth is refused at the edge, whatever the password.
    r = login(base, email, PASSWORD)
    body = assert_problem(r, 429)
    assert "slow down" in body["detail"], body
    assert int(r.header("Retry-After")) >= 1
    # Another account from the same address is not affected.
    other, _ = new_user(system["edges"][0].url)
    assert login(base, other, PASSWORD).status == 200


def test_cors(system):
    base = system["limited"].url
    r = http("OPTIONS", base + "/api/auth/login",
             headers={"Origin": "https://app.example.com",
                      "Access-Control-Request-Method": "POST"})
    assert r.status == 204, r
    assert r.header("Access-Control-Allow-Origin") == "https://app.example.com"
    assert "POST" in r.header("Access-Control-Allow-Methods")
    assert "Authorization" in r.header("Access-Control-Allow-Headers")
    r = http("OPTIONS", base + "/api/auth/login",
             headers={"Origin": "https://evil.example.net",
                      "Access-Control-Request-Method": "POST"})
    assert r.status == 403 and r.header("Access-Control-Allow-Origin") is None, r
    r = http("GET", base + "/api/auth/status", headers={"Origin": "https://app.example.com"})
    assert r.status == 200
    assert r.header("Access-Control-Allow-Origin") == "https://app.example.com"
    r = http("GET", base + "/api/auth/status", headers={"Origin": "https://evil.example.net"})
    assert r.header("Access-Control-Allow-Origin") is None
    # Without CORS configured, no CORS headers at all.
    r = http("GET", system["edges"][0].url + "/api/auth/status",
             headers={"Origin": "https://app.example.com"})
    assert r.header("Access-Control-Allow-Origin") is None


@pytest.mark.parametrize("password,why", [
    ("Password123", "too common"),
    ("aaaaaaaaaaaa", "two kinds"),
    ("{local}-Secret9", "email's name"),
])
def test_password_policy(system, password, why):
    base = system["edges"][0].url
    email = unique_email("policy")
    password = password.replace("{local}", email.split("@")[0])
    _, r = signup(base, email=email, password=password)
    # Valid by the schema, refused by the policy: 422, not 400.
    body = assert_problem(r, 422)
    assert why in body["detail"], body
    assert password not in r.raw.decode()


def test_security_headers_on_every_answer(system):
    base = system["edges"][0].url
    for r in (http("GET", base + "/health"), http("GET", base + "/nope"),
              http("POST", base + "/api/auth/login", body="{", headers={"Content-Type": "application/json"})):
        assert r.header("X-Frame-Options") == "DENY"
        assert r.header("Cache-Control") == "no-store"
        assert r.header("Referrer-Policy") == "no-referrer"


def test_zz_no_secret_in_any_log(system):
    """Runs last in the module: every password, token and hash this module
    used must be absent from every log line its processes wrote."""
    base = system["edges"][0].url
    email, tokens = new_user(base)
    http("POST", base + "/api/auth/refresh", json_body={"refresh_token": tokens["refresh_token"]})
    time.sleep(0.5)
    secrets_used = [PASSWORD, tokens["access_token"], tokens["refresh_token"],
                    tokens["refresh_token"].split(".", 1)[1], "Wrong password 1",
                    "$argon2id$"]
    for proc in [system["auth"], *system["edges"], system["limited"]]:
        text = proc.log_text()
        for s in secrets_used:
            assert s not in text, f"{proc.name} logged a secret ({s[:12]}...)"
