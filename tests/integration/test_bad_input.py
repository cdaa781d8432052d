"""What the edge refuses, and how: status, problem+json, and every bad field
named. One monolith with only auth, a 4 KiB body limit and cheap argon2."""

import json
import time
import uuid

import pytest

from conftest import (LOW_ARGON2, assert_problem, default_claims, http, login,
                      make_jwt, signup, wait_status)

MAX_BODY = 4096


@pytest.fixture(scope="module")
def edge(module_procs):
    p = module_procs.start_monolith(["--only", "auth"], OMNIFY_MAX_BODY_BYTES=str(MAX_BODY),
                                    **LOW_ARGON2)
    wait_status(p.url, "auth")
    return p


@pytest.fixture(scope="module")
def user(edge):
    email, r = signup(edge.url, password="valid-password-1")
    assert r.status == 201, r
    lg = login(edge.url, email, "valid-password-1")
    assert lg.status == 200, lg
    return {"email": email, "user": r.body, "token": lg.body["access_token"]}


def post(edge, path, body, ctype="application/json", **kw):
    headers = dict(kw.pop("headers", {}))
    if ctype is not None:
        headers["Content-Type"] = ctype
    return http("POST", edge.url + path, body=body, headers=headers, **kw)


def post_json(edge, path, obj, **kw):
    return post(edge, path, json.dumps(obj), **kw)


def good_signup(**changes):
    body = {"email": f"ok-{uuid.uuid4().hex[:10]}@example.com", "password": "password-123",
            "name": "Valid"}
    body.update(changes)
    return body


# ---------------------------------------------------------------------------
# Validation: every bad field named
# ---------------------------------------------------------------------------

def test_three_bad_fields_all_named(edge):
    r = post_json(edge, "/api/auth/signup", {"email": 123, "password": "x"})
    assert_problem(r, 400, {"email", "password", "name"})


def test_wrong_types_named(edge):
    r = post_json(edge, "/api/auth/login", {"email": True, "password": ["p"]})
    assert_problem(r, 400, {"email", "password"})


def test_missing_fields_named(edge):
    r = post_json(edge, "/api/auth/login", {})
    assert_problem(r, 400, {"email", "password"})


def test_empty_body_is_missing_fields(edge):
    r = post(edge, "/api/auth/signup", b"")
    assert_problem(r, 400, {"email", "password", "name"})


def test_null_value_is_wrong_type(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(name=None))
    assert_problem(r, 400, {"name"})


def test_bad_email_format(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(email="not-an-email"))
    assert_problem(r, 400, {"email"})


def test_password_too_short(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(password="short"))
    body = assert_problem(r, 400, {"password"})
    # The reason never echoes the secret value.
    assert "short" not in json.dumps(body["errors"]), body


def test_password_too_long(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(password="p" * 129))
    assert_problem(r, 400, {"password"})


def test_name_too_long(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(name="n" * 101))
    assert_problem(r, 400, {"name"})


def test_undeclared_field(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(is_admin=True))
    assert_problem(r, 400, {"is_admin"})


def test_undeclared_field_with_bad_field(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(roles=["admin"], email=5))
    assert_problem(r, 400, {"roles", "email"})


def test_malformed_json(edge):
    r = post(edge, "/api/auth/signup", '{"email": "a@b.co", "password": ')
    assert_problem(r, 400)


def test_trailing_garbage_is_malformed(edge):
    r = post(edge, "/api/auth/signup", json.dumps(good_signup()) + " xyz")
    assert_problem(r, 400)


def test_duplicate_keys_refused(edge):
    text = ('{"email":"dup-%s@example.com","email":"other@example.com",'
            '"password":"password-123","name":"D"}' % uuid.uuid4().hex[:8])
    assert_problem(post(edge, "/api/auth/signup", text), 400)


def test_top_level_array(edge):
    assert_problem(post(edge, "/api/auth/signup", json.dumps([good_signup()])), 400)


def test_top_level_scalar(edge):
    assert_problem(post(edge, "/api/auth/signup", '"just a string"'), 400)
    assert_problem(post(edge, "/api/auth/signup", "42"), 400)


def test_deep_nesting_refused(edge):
    deep = "[" * 200 + "]" * 200
    r = post(edge, "/api/auth/signup", '{"email":"a@b.co","password":"password-1","name":%s}'
             % deep)
    assert_problem(r, 400)


def test_invalid_utf8_refused(edge):
    body = b'{"email":"a@b.co","password":"password-1","name":"\xff\xfe"}'
    assert_problem(post(edge, "/api/auth/signup", body), 400)


def test_valid_body_still_accepted(edge):
    # The control: the same route with a valid body is created.
    r = post_json(edge, "/api/auth/signup", good_signup(),
                  ctype="application/json; charset=utf-8")
    assert r.status == 201, r


# ---------------------------------------------------------------------------
# Sizes, media types, routes, methods
# ---------------------------------------------------------------------------

def test_body_over_limit_413(edge):
    body = json.dumps(good_signup(name="n" * (MAX_BODY + 100)))
    assert_problem(post(edge, "/api/auth/signup", body), 413)


def test_chunked_body_over_limit_413(edge):
    body = json.dumps(good_signup(name="n" * (MAX_BODY + 100)))
    assert_problem(post(edge, "/api/auth/signup", body, chunked=True), 413)


def test_chunked_body_under_limit_accepted(edge):
    r = post(edge, "/api/auth/signup", json.dumps(good_signup()), chunked=True)
    assert r.status == 201, r


def test_text_plain_415(edge):
    r = post(edge, "/api/auth/signup", json.dumps(good_signup()), ctype="text/plain")
    assert_problem(r, 415)


def test_form_415(edge):
    r = post(edge, "/api/auth/signup", "email=a%40b.co&password=password-1&name=x",
             ctype="application/x-www-form-urlencoded")
    assert_problem(r, 415)


def test_json_lookalike_type_415(edge):
    r = post(edge, "/api/auth/signup", json.dumps(good_signup()), ctype="application/jsonp")
    assert_problem(r, 415)


def test_body_without_content_type_415(edge):
    r = post(edge, "/api/auth/signup", json.dumps(good_signup()), ctype=None)
    assert_problem(r, 415)


def test_unknown_api_route_404(edge):
    assert_problem(http("GET", edge.url + "/api/nope"), 404)
    assert_problem(http("GET", edge.url + "/api/auth/signupx"), 404)


def test_unknown_api_route_with_body_404(edge):
    assert_problem(post_json(edge, "/api/auth/nothing", {}), 404)


def test_unknown_path_404(edge):
    assert_problem(http("GET", edge.url + "/nope"), 404)
    assert_problem(http("GET", edge.url + "/"), 404)


def test_wrong_method_405_with_allow(edge):
    r = http("GET", edge.url + "/api/auth/signup")
    assert_problem(r, 405)
    assert "POST" in (r.header("Allow") or ""), dict(r.headers)

    r = http("DELETE", edge.url + "/api/auth/status")
    assert_problem(r, 405)
    assert "GET" in (r.header("Allow") or ""), dict(r.headers)

    r = http("DELETE", edge.url + "/health")
    assert_problem(r, 405)
    assert "GET" in (r.header("Allow") or ""), dict(r.headers)


def test_wrong_method_with_body_405_with_allow(edge):
    r = post_json(edge, "/api/auth/me", {})
    assert_problem(r, 405)
    assert "GET" in (r.header("Allow") or ""), dict(r.headers)


def test_route_needing_token_with_body_401(edge):
    # A POST route that needs a token, called with a JSON body and none.
    r = post_json(edge, "/api/auth/logout", {})
    assert_problem(r, 401)
    assert (r.header("WWW-Authenticate") or "").lower().startswith("bearer"), dict(r.headers)


def test_rate_limit_429_with_retry_after(procs):
    # Its own edge with a limit of 3 signups a minute from one address.
    p = procs.start_monolith(["--only", "auth"], OMNIFY_RATE_IP_PER_MIN="3", **LOW_ARGON2)
    wait_status(p.url, "auth")
    answers = [post_json(p, "/api/auth/signup", good_signup()) for _ in range(5)]
    assert [r.status for r in answers[:3]] == [201, 201, 201], answers
    for r in answers[3:]:
        assert_problem(r, 429)
        retry = r.header("Retry-After") or ""
        assert retry.isdigit() and 0 < int(retry) <= 60, dict(r.headers)
        assert r.elapsed < 1, r
    # Routes without a limit are not affected.
    assert http("GET", p.url + "/api/auth/status").status == 200
    assert p.stop() == 0


def test_bad_idempotency_key_400(edge):
    r = post_json(edge, "/api/auth/signup", good_signup(),
                  headers={"Idempotency-Key": "x" * 300})
    assert_problem(r, 400)


# ---------------------------------------------------------------------------
# Tokens: every bad kind is 401 on a route that needs one
# ---------------------------------------------------------------------------

def me(edge, token=None, authorization=None):
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization
    elif token is not None:
        headers["Authorization"] = "Bearer " + token
    return http("GET", edge.url + "/api/auth/me", headers=headers)


def assert_401(r):
    assert_problem(r, 401)
    assert (r.header("WWW-Authenticate") or "").lower().startswith("bearer"), dict(r.headers)


def claims_of(user, **changes):
    c = default_claims(sub=user["user"]["id"], tid=user["user"]["tenant_id"])
    c.update(changes)
    return {k: v for k, v in c.items() if v is not None}


def test_crafted_token_control_is_accepted(edge, user, session):
    # Proves the tokens below are refused for the flaw they carry, not
    # because the crafting itself is off.
    r = me(edge, make_jwt(session.jwt_secret, claims_of(user)))
    assert r.status == 200, r
    assert r.body["id"] == user["user"]["id"], r


def test_issued_token_is_accepted(edge, user):
    assert me(edge, user["token"]).status == 200


def test_no_token(edge):
    assert_401(me(edge))


def test_not_a_bearer(edge, user):
    assert_401(me(edge, authorization="Basic dXNlcjpwYXNz"))
    assert_401(me(edge, authorization=user["token"]))


def test_garbage_token(edge):
    assert_401(me(edge, "garbage"))
    assert_401(me(edge, "a.b.c"))
    assert_401(me(edge, ""))


def test_tampered_payload(edge, user):
    head, body, sig = user["token"].split(".")
    from conftest import b64url, b64url_decode
    claims = json.loads(b64url_decode(body))
    claims["roles"] = ["owner", "admin"]
    assert_401(me(edge, f"{head}.{b64url(json.dumps(claims))}.{sig}"))
    claims = json.loads(b64url_decode(body))
    claims["sub"] = str(uuid.uuid4())
    assert_401(me(edge, f"{head}.{b64url(json.dumps(claims))}.{sig}"))


def test_tampered_signature(edge, user):
    head, body, sig = user["token"].split(".")
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    assert_401(me(edge, f"{head}.{body}.{flipped}"))


def test_wrong_secret(edge, user):
    assert_401(me(edge, make_jwt("another-secret-that-is-long-enough-0123456789",
                                 claims_of(user))))


def test_expired(edge, user, session):
    now = int(time.time())
    c = claims_of(user, iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    assert_401(me(edge, make_jwt(session.jwt_secret, c)))


def test_not_yet_valid(edge, user, session):
    now = int(time.time())
    c = claims_of(user, iat=now, nbf=now + 3600, exp=now + 7200)
    assert_401(me(edge, make_jwt(session.jwt_secret, c)))


def test_alg_none(edge, user):
    for header in ({"alg": "none", "typ": "JWT", "kid": "k1"},
                   {"alg": "none", "typ": "JWT"},
                   {"alg": "None", "typ": "JWT", "kid": "k1"}):
        assert_401(me(edge, make_jwt("", claims_of(user), header=header, sign=False)))


def test_alg_other_hmac(edge, user, session):
    tok = make_jwt(session.jwt_secret, claims_of(user),
                   header={"alg": "HS512", "typ": "JWT", "kid": "k1"}, alg="HS512")
    assert_401(me(edge, tok))


def test_wrong_kid(edge, user, session):
    tok = make_jwt(session.jwt_secret, claims_of(user),
                   header={"alg": "HS256", "typ": "JWT", "kid": "k2"})
    assert_401(me(edge, tok))
    tok = make_jwt(session.jwt_secret, claims_of(user),
                   header={"alg": "HS256", "typ": "JWT"})
    assert_401(me(edge, tok))


def test_wrong_issuer_or_audience(edge, user, session):
    assert_401(me(edge, make_jwt(session.jwt_secret, claims_of(user, iss="evil"))))
    assert_401(me(edge, make_jwt(session.jwt_secret, claims_of(user, aud="other-api"))))


def test_missing_claims(edge, user, session):
    for drop in ("exp", "sub", "tid"):
        c = claims_of(user)
        del c[drop]
        assert_401(me(edge, make_jwt(session.jwt_secret, c)))


def test_bad_token_on_operations(edge):
    r = http("GET", edge.url + "/api/operations/00000000-0001-7000-8000-000000000000",
             headers={"Authorization": "Bearer garbage"})
    assert_401(r)


def test_sigterm_exits_0(edge):
    assert edge.stop() == 0
