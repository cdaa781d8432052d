"""MFA (TOTP, RFC 6238) over the API, against a monolith: enrolment and
confirmation, the login's challenge and its verification, one-time codes and
recovery codes, lock-out, disabling with re-authentication, status, and no
secret in the logs.

The authenticator app is played by the test: TOTP is computed here with
hmac/hashlib/base64 from the secret the enrolment answered. A code is good
once (per 30-second step), so the test's Authenticator hands out codes of
strictly increasing steps, within the server's window of one step either
side, and waits for the clock when it has used up the steps it may use.
"""

import base64
import hashlib
import hmac
import re
import struct
import time
import urllib.parse

import pytest

from conftest import (LOW_ARGON2, assert_problem, default_claims, http, login, make_jwt,
                      signup, wait_all_status)

PASSWORD = "Mfa-test-password 1"
PERIOD = 30
RECOVERY_RE = re.compile(r"^[23456789abcdefghjkmnpqrstuvwxyz]{4}(-[23456789abcdefghjkmnpqrstuvwxyz]{4}){2}$")
BASE32_RE = re.compile(r"^[A-Z2-7]{32}$")
MAX_FAILURES = 3
LOCK_S = 4


# ---------------------------------------------------------------------------
# TOTP, as an authenticator app computes it
# ---------------------------------------------------------------------------

def hotp(secret_b32, counter, digits=6):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def now_step():
    return int(time.time()) // PERIOD


def test_python_totp_matches_rfc_vectors():
    """The test's own TOTP agrees with RFC 4226/6238 before it judges ours."""
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert [hotp(secret, c) for c in range(3)] == ["755224", "287082", "359152"]
    assert hotp(secret, 59 // 30, 8) == "94287082"
    assert hotp(secret, 1111111109 // 30, 8) == "07081804"


USED_CODES = []  # every TOTP code handed out, for the log scan


class Authenticator:
    """The app on the user's phone: codes of strictly increasing steps (the
    server refuses a step at or below the last one used), each within one
    step of now."""

    def __init__(self, secret):
        self.secret = secret
        self.last = None

    def code(self):
        while True:
            now = now_step()
            step = now if self.last is None else max(now, self.last + 1)
            if step <= now + 1:
                break
            # Both usable steps are spent: wait for the next period.
            time.sleep(PERIOD - time.time() % PERIOD + 0.2)
        self.last = step
        USED_CODES.append(hotp(self.secret, step))
        return USED_CODES[-1]

    def wrong(self):
        """Six digits that match no step the server would accept now."""
        near = {hotp(self.secret, now_step() + d) for d in range(-2, 3)}
        for n in range(1000000):
            c = f"{(n * 7919 + 123457) % 1000000:06d}"
            if c not in near:
                return c
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------------
# The system and its accounts
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mono(module_procs):
    p = module_procs.start_monolith(
        OMNIFY_RATE_IP_PER_MIN="100000", OMNIFY_RATE_ACCOUNT_PER_MIN="100000",
        OMNIFY_LOGIN_MAX_FAILURES=str(MAX_FAILURES), OMNIFY_LOGIN_LOCK_S=str(LOCK_S),
        OMNIFY_MFA_ISSUER="Omnify Test & Co", **LOW_ARGON2)
    wait_all_status(p.url, groups=["auth"])
    p.seen_secrets = []  # everything that must never show up in a log line
    return p


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def post(mono, path, body=None, token=None):
    return http("POST", mono.url + path, json_body=body if body is not None else {},
                headers=bearer(token) if token else None)


def get(mono, path, token=None):
    return http("GET", mono.url + path, headers=bearer(token) if token else None)


def new_account(mono):
    email, r = signup(mono.url, password=PASSWORD)
    assert r.status == 201, r
    r = login(mono.url, email, PASSWORD)
    assert r.status == 200, r
    return {"email": email, "access": r.body["access_token"], "user": r.body}


def enroll(mono, acct):
    r = post(mono, "/api/mfa/enroll", token=acct["access"])
    assert r.status == 200, r
    mono.seen_secrets.append(r.body["secret"])
    return r.body


def mfa_account(mono):
    """An account with MFA enabled: its app, its recovery codes, a token."""
    acct = new_account(mono)
    body = enroll(mono, acct)
    app = Authenticator(body["secret"])
    code = app.code()
    r = post(mono, "/api/mfa/confirm", {"code": code}, token=acct["access"])
    assert r.status == 200, r
    mono.seen_secrets.extend(r.body["recovery_codes"])
    acct.update(app=app, recovery=list(r.body["recovery_codes"]), secret=body["secret"])
    return acct


def challenge_of(mono, acct):
    """Log in with the password; MFA is on, so the answer is a challenge."""
    r = login(mono.url, acct["email"], PASSWORD)
    body = assert_problem(r, 401)
    assert body.get("mfa_required") is True, r
    mono.seen_secrets.append(body["challenge"])
    return body["challenge"]


def verify(mono, challenge, code=None, recovery_code=None):
    body = {"challenge": challenge}
    if code is not None:
        body["code"] = code
    if recovery_code is not None:
        body["recovery_code"] = recovery_code
    return post(mono, "/api/mfa/verify", body)


# ---------------------------------------------------------------------------
# Enrolment and confirmation
# ---------------------------------------------------------------------------

def test_enroll_answers_secret_and_escaped_otpauth_uri(mono):
    acct = new_account(mono)
    body = enroll(mono, acct)
    assert set(body) == {"secret", "otpauth_uri"}, body
    assert BASE32_RE.match(body["secret"]), body  # 20 bytes, unpadded
    assert len(base64.b32decode(body["secret"])) == 20
    uri = urllib.parse.urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp"), body
    # The label is "<issuer>:<email>", each escaped: '&' and ' ' and '@'
    # cannot break the URI.
    assert uri.path == "/" + urllib.parse.quote("Omnify Test & Co", safe="") + ":" + \
        urllib.parse.quote(acct["email"], safe=""), uri
    assert "%40" in uri.path and "%26" in uri.path and "%20" in uri.path
    query = urllib.parse.parse_qs(uri.query, strict_parsing=True)
    assert query == {"secret": [body["secret"]], "issuer": ["Omnify Test & Co"],
                     "algorithm": ["SHA1"], "digits": ["6"], "period": ["30"]}, query
    # Not on until confirmed.
    r = get(mono, "/api/mfa/status", acct["access"])
    assert r.status == 200 and r.body == {"enabled": False, "recovery_codes_left": 0}, r
    assert get(mono, "/api/auth/me", acct["access"]).body["mfa_enabled"] is False
    # Login still needs only the password.
    assert login(mono.url, acct["email"], PASSWORD).status == 200


def test_enroll_again_replaces_the_unconfirmed_secret(mono):
    acct = new_account(mono)
    first = enroll(mono, acct)["secret"]
    second = enroll(mono, acct)["secret"]
    assert first != second
    r = post(mono, "/api/mfa/confirm", {"code": hotp(first, now_step())},
             token=acct["access"])
    if hotp(first, now_step()) != hotp(second, now_step()):
        assert_problem(r, 422)
    r = post(mono, "/api/mfa/confirm", {"code": Authenticator(second).code()},
             token=acct["access"])
    assert r.status == 200, r


def test_confirm_gives_ten_distinct_recovery_codes_once(mono):
    acct = mfa_account(mono)
    codes = acct["recovery"]
    assert len(codes) == 10 and len(set(codes)) == 10, codes
    for c in codes:
        assert RECOVERY_RE.match(c), c
    r = get(mono, "/api/mfa/status", acct["access"])
    assert r.status == 200 and r.body == {"enabled": True, "recovery_codes_left": 10}, r
    assert get(mono, "/api/auth/me", acct["access"]).body["mfa_enabled"] is True
    # Enabled: neither a new enrolment nor a second confirmation.
    assert_problem(post(mono, "/api/mfa/enroll", token=acct["access"]), 409)
    r = post(mono, "/api/mfa/confirm", {"code": acct["app"].code()}, token=acct["access"])
    assert_problem(r, 409)


def test_confirm_refuses_wrong_malformed_and_unenrolled(mono):
    acct = new_account(mono)
    # Nothing to confirm yet.
    assert_problem(post(mono, "/api/mfa/confirm", {"code": "123456"},
                        token=acct["access"]), 409)
    app = Authenticator(enroll(mono, acct)["secret"])
    # A wrong code is well-formed: 422, not 400.
    assert_problem(post(mono, "/api/mfa/confirm", {"code": app.wrong()},
                        token=acct["access"]), 422)
    # The schema: six characters, required, nothing else.
    for body, fields in [({"code": "12345"}, {"code"}), ({"code": "1234567"}, {"code"}),
                         ({}, {"code"}), ({"code": 123456}, {"code"}),
                         ({"code": "123456", "extra": 1}, {"extra"})]:
        assert_problem(post(mono, "/api/mfa/confirm", body, token=acct["access"]),
                       400, fields)
    # Six characters that are not digits are no code (the schema says six
    # characters; the group says which ones).
    assert_problem(post(mono, "/api/mfa/confirm", {"code": "12a456"},
                        token=acct["access"]), 422)
    r = get(mono, "/api/mfa/status", acct["access"])
    assert r.body["enabled"] is False, r
    # The right code still works after all that.
    r = post(mono, "/api/mfa/confirm", {"code": app.code()}, token=acct["access"])
    assert r.status == 200, r


# ---------------------------------------------------------------------------
# Login with the second factor
# ---------------------------------------------------------------------------

def test_login_requires_mfa_then_verify_gives_working_tokens(mono):
    acct = mfa_account(mono)
    r = login(mono.url, acct["email"], PASSWORD)
    body = assert_problem(r, 401)
    assert body["title"] == "MFA required", body
    assert body["mfa_required"] is True and body["type"] == "about:blank", body
    assert isinstance(body["challenge"], str) and len(body["challenge"]) >= 40, body
    assert body["expires_in"] == 300, body
    assert "access_token" not in body and "refresh_token" not in body, body
    mono.seen_secrets.append(body["challenge"])

    r = verify(mono, body["challenge"], code=acct["app"].code())
    assert r.status == 200, r
    assert r.body["token_type"] == "Bearer", r
    assert r.body["refresh_token"].startswith(r.body["session_id"] + "."), r
    me = get(mono, "/api/auth/me", r.body["access_token"])
    assert me.status == 200, me
    assert me.body["email"] == acct["email"] and me.body["mfa_enabled"] is True, me
    # The session is a real one: its refresh token rotates.
    r2 = post(mono, "/api/auth/refresh", {"refresh_token": r.body["refresh_token"]})
    assert r2.status == 200, r2


def test_wrong_code_is_401_and_uses_up_the_challenge(mono):
    acct = mfa_account(mono)
    challenge = challenge_of(mono, acct)
    r = verify(mono, challenge, code=acct["app"].wrong())
    body = assert_problem(r, 401)
    assert "log in again" in body["detail"], body
    assert "access_token" not in body
    # The right code cannot rescue a used challenge.
    code = acct["app"].code()
    r = verify(mono, challenge, code=code)
    body = assert_problem(r, 401)
    assert "log in again" in body["detail"], body
    # That code was not spent by the refused attempt: a new login takes it.
    r = verify(mono, challenge_of(mono, acct), code=code)
    assert r.status == 200, r


def test_challenge_is_single_use_even_after_success(mono):
    acct = mfa_account(mono)
    challenge = challenge_of(mono, acct)
    assert verify(mono, challenge, code=acct["app"].code()).status == 200
    r = verify(mono, challenge, code=acct["app"].code())
    assert_problem(r, 401)


def test_replayed_code_is_refused(mono):
    acct = mfa_account(mono)
    code = acct["app"].code()
    assert verify(mono, challenge_of(mono, acct), code=code).status == 200
    # The same code again, with a fresh challenge: refused.
    r = verify(mono, challenge_of(mono, acct), code=code)
    assert_problem(r, 401)
    # An older step's code (the one confirmation used) is refused too.
    older = hotp(acct["secret"], acct["app"].last - 1)
    r = verify(mono, challenge_of(mono, acct), code=older)
    assert_problem(r, 401)


def test_verify_refuses_unknown_challenge_and_bad_bodies(mono):
    acct = mfa_account(mono)
    assert_problem(verify(mono, "not-a-challenge", code="123456"), 401)
    challenge = challenge_of(mono, acct)
    # Exactly one of code and recovery_code (a rule across fields: 422);
    # these leave the challenge alone.
    assert_problem(verify(mono, challenge), 422)
    assert_problem(verify(mono, challenge, code="123456", recovery_code=acct["recovery"][0]),
                   422)
    assert_problem(verify(mono, challenge, code="12345"), 400, {"code"})
    assert_problem(post(mono, "/api/mfa/verify", {"code": "123456"}), 400, {"challenge"})
    # The challenge survived the refused bodies.
    assert verify(mono, challenge, code=acct["app"].code()).status == 200


def test_a_challenge_is_not_a_bearer_token(mono):
    acct = mfa_account(mono)
    challenge = challenge_of(mono, acct)
    assert_problem(get(mono, "/api/auth/me", challenge), 401)
    assert_problem(get(mono, "/api/mfa/status", challenge), 401)


# ---------------------------------------------------------------------------
# Recovery codes
# ---------------------------------------------------------------------------

def test_recovery_code_works_once(mono):
    acct = mfa_account(mono)
    code = acct["recovery"][3]
    r = verify(mono, challenge_of(mono, acct), recovery_code=code)
    assert r.status == 200, r
    token = r.body["access_token"]
    assert get(mono, "/api/auth/me", token).status == 200
    r = get(mono, "/api/mfa/status", token)
    assert r.body == {"enabled": True, "recovery_codes_left": 9}, r
    # Used: refused the second time, and the challenge with it.
    r = verify(mono, challenge_of(mono, acct), recovery_code=code)
    body = assert_problem(r, 401)
    assert "log in again" in body["detail"], body
    assert get(mono, "/api/mfa/status", token).body["recovery_codes_left"] == 9


def test_recovery_code_as_people_type_it(mono):
    acct = mfa_account(mono)
    typed = acct["recovery"][0].replace("-", " ").upper()
    r = verify(mono, challenge_of(mono, acct), recovery_code=typed)
    assert r.status == 200, r
    # The same code in its usual form is now used up.
    assert_problem(verify(mono, challenge_of(mono, acct),
                          recovery_code=acct["recovery"][0]), 401)
    # A code of the right shape that was never issued.
    assert_problem(verify(mono, challenge_of(mono, acct),
                          recovery_code="2345-6789-abcd"), 401)


# ---------------------------------------------------------------------------
# Lock-out
# ---------------------------------------------------------------------------

def test_wrong_codes_lock_the_account_for_a_while(mono):
    acct = mfa_account(mono)
    for i in range(MAX_FAILURES):
        r = verify(mono, challenge_of(mono, acct), code=acct["app"].wrong())
        assert_problem(r, 401)
    # Locked: even the password and a right code are refused for now.
    r = login(mono.url, acct["email"], PASSWORD)
    assert_problem(r, 429)
    assert int(r.header("Retry-After") or r.body.get("retry_after") or 0) >= 1, r
    time.sleep(LOCK_S + 1)
    r = verify(mono, challenge_of(mono, acct), code=acct["app"].code())
    assert r.status == 200, r


def test_a_challenge_taken_before_the_lock_is_refused_during_it(mono):
    acct = mfa_account(mono)
    held = challenge_of(mono, acct)
    for i in range(MAX_FAILURES):
        assert_problem(verify(mono, challenge_of(mono, acct), code=acct["app"].wrong()),
                       401)
    assert_problem(verify(mono, held, code=acct["app"].code()), 429)


# ---------------------------------------------------------------------------
# Disable
# ---------------------------------------------------------------------------

def test_disable_needs_password_and_code(mono):
    acct = mfa_account(mono)
    token = acct["access"]
    code = acct["app"].code()
    # Wrong password with a right code: refused, and the code is not spent.
    r = post(mono, "/api/mfa/disable", {"password": "not the password", "code": code},
             token=token)
    assert_problem(r, 401)
    # Right password, wrong code.
    r = post(mono, "/api/mfa/disable", {"password": PASSWORD, "code": acct["app"].wrong()},
             token=token)
    assert_problem(r, 401)
    # Neither or both factors (422); missing password (400, the schema).
    assert_problem(post(mono, "/api/mfa/disable", {"password": PASSWORD}, token=token), 422)
    assert_problem(post(mono, "/api/mfa/disable",
                        {"password": PASSWORD, "code": code,
                         "recovery_code": acct["recovery"][0]}, token=token), 422)
    assert_problem(post(mono, "/api/mfa/disable", {"code": code}, token=token), 400,
                   {"password"})
    assert get(mono, "/api/mfa/status", token).body["enabled"] is True
    # Both right.
    r = post(mono, "/api/mfa/disable", {"password": PASSWORD, "code": code}, token=token)
    assert r.status == 200 and r.body == {"enabled": False}, r
    r = get(mono, "/api/mfa/status", token)
    assert r.body == {"enabled": False, "recovery_codes_left": 0}, r
    # Login is back to the password alone; nothing left to disable.
    r = login(mono.url, acct["email"], PASSWORD)
    assert r.status == 200 and "access_token" in r.body, r
    assert_problem(post(mono, "/api/mfa/disable", {"password": PASSWORD, "code": code},
                        token=token), 409)
    # And MFA can be enrolled afresh, with a new secret.
    assert enroll(mono, acct)["secret"] != acct["secret"]


def test_disable_with_a_recovery_code_when_the_phone_is_lost(mono):
    acct = mfa_account(mono)
    r = post(mono, "/api/mfa/disable",
             {"password": PASSWORD, "recovery_code": acct["recovery"][9]},
             token=acct["access"])
    assert r.status == 200 and r.body == {"enabled": False}, r


def test_disable_refuses_a_replayed_code(mono):
    acct = mfa_account(mono)
    code = acct["app"].code()
    assert verify(mono, challenge_of(mono, acct), code=code).status == 200
    r = post(mono, "/api/mfa/disable", {"password": PASSWORD, "code": code},
             token=acct["access"])
    assert_problem(r, 401)
    assert get(mono, "/api/mfa/status", acct["access"]).body["enabled"] is True


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,body", [
    ("POST", "/api/mfa/enroll", {}),
    ("POST", "/api/mfa/confirm", {"code": "123456"}),
    ("POST", "/api/mfa/disable", {"password": PASSWORD, "code": "123456"}),
    ("GET", "/api/mfa/status", None),
])
def test_routes_need_a_valid_token(mono, session, method, path, body):
    acct = new_account(mono)
    good = acct["access"]
    head, claims, sig = good.split(".")
    tampered = f"{head}.{claims[:-2]}{'A' if claims[-2] != 'A' else 'B'}{claims[-1]}.{sig}"
    wrong_key = make_jwt("x" * 48)
    none_alg = make_jwt(session.jwt_secret, alg="HS256", sign=False)
    for headers in [None, {"Authorization": "Bearer"}, bearer("garbage"), bearer(tampered),
                    bearer(wrong_key), bearer(none_alg), {"Authorization": "Basic " + good}]:
        r = http(method, mono.url + path, json_body=body, headers=headers)
        assert_problem(r, 401)


def test_token_of_no_member_is_refused_by_the_group(mono, session):
    """A correctly signed token whose user is not a member of its tenant (as
    after a removal): the group re-checks and refuses."""
    acct = new_account(mono)
    other = new_account(mono)
    claims_me = get(mono, "/api/auth/me", acct["access"]).body
    claims_other = get(mono, "/api/auth/me", other["access"]).body
    forged = make_jwt(session.jwt_secret,
                      claims=default_claims(sub=claims_me["id"],
                                            tid=claims_other["tenant_id"]))
    r = get(mono, "/api/mfa/status", forged)
    assert r.status in (401, 403), r
    r = post(mono, "/api/mfa/enroll", token=forged)
    assert r.status in (401, 403), r


# ---------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------

def test_zz_no_secret_in_the_logs(mono):
    """Runs last in this module: every secret, recovery code and challenge
    the tests saw is absent from every line the monolith wrote."""
    mfa_account(mono)  # at least one of each, even when run alone
    text = open(mono.log_path, encoding="utf-8", errors="replace").read()
    assert mono.seen_secrets
    for s in mono.seen_secrets:
        assert s not in text, "a secret appears in the log"
        assert s.replace("-", "") not in text
    for code in USED_CODES:
        assert f'"{code}"' not in text, "a TOTP code appears in the log"
