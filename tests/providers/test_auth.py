"""Each provider's auth as documented: authorize + token endpoints, PKCE,
lifetimes, rotation and reuse, Meta's exchange, TikTok's JSON exchange,
GoHighLevel location tokens, API keys, revocation, expired tokens."""

import base64

from standin.client import jbody, pkce_pair

REDIRECT = "http://127.0.0.1:9/callback"


def cfg(st, prefix):
    return st.admin("GET", f"/config/{prefix}")["config"]


def test_shopify_install_hmac_code_and_rotating_refresh(st):
    c = cfg(st, "shopify")
    st.config("shopify", access_ttl=120)
    q = st.authorize(st.base("shopify") + "/acme/admin/oauth/authorize",
                     {"client_id": c["client_id"], "scope": "read_orders", "redirect_uri": REDIRECT, "state": "s1"})
    assert q["shop"] == "acme.myshopify.com" and q["state"] == "s1"
    import hashlib
    import hmac
    msg = "&".join(f"{k}={v}" for k, v in sorted(q.items()) if k != "hmac")
    assert hmac.compare_digest(q["hmac"], hmac.new(c["client_secret"].encode(), msg.encode(),
                                                   hashlib.sha256).hexdigest())
    url = st.base("shopify") + "/acme/admin/oauth/access_token"
    s, _, raw = st.call("POST", url, body={"client_id": c["client_id"], "client_secret": c["client_secret"],
                                           "code": q["code"], "expiring": 1})
    tok = jbody(raw)
    assert s == 200 and tok["expires_in"] <= 120 and tok["refresh_token"].startswith("shprt_")
    refresh = {"client_id": c["client_id"], "client_secret": c["client_secret"], "grant_type": "refresh_token"}
    s, _, raw = st.call("POST", url, body=dict(refresh, refresh_token=tok["refresh_token"]))
    new = jbody(raw)
    assert s == 200 and new["refresh_token"] != tok["refresh_token"]
    # The rotated refresh token is spent: reuse is refused and counted.
    s, _, _ = st.call("POST", url, body=dict(refresh, refresh_token=tok["refresh_token"]))
    assert s == 400
    gql = st.base("shopify") + "/{}/admin/api/2025-01/graphql.json"
    auth = {"X-Shopify-Access-Token": new["access_token"]}
    assert st.call("POST", gql.format("acme"), body={"query": "{ shop { name } }"}, headers=auth)[0] == 200
    # Another shop's token does not open this shop.
    assert st.call("POST", gql.format("other"), body={"query": "{ shop { name } }"}, headers=auth)[0] == 401
    # A code used twice is refused, and what it gave is revoked (RFC 6749 4.1.2).
    s, _, _ = st.call("POST", url, body={"client_id": c["client_id"], "client_secret": c["client_secret"],
                                         "code": q["code"]})
    assert s == 400
    assert st.call("POST", gql.format("acme"), body={"query": "{ shop { name } }"}, headers=auth)[0] == 401
    n = st.counters("shopify")
    assert n["refreshes"]["total"] == 1 and n["refresh_reuse"]["total"] == 1 and n["code_reuse"]["total"] == 1


def test_refresh_grace_lets_a_racing_refresh_through(st):
    c = st.config("gohighlevel", refresh_grace_s=30)
    q = st.authorize(st.base("gohighlevel") + "/oauth/chooselocation",
                     {"client_id": c["client_id"], "redirect_uri": REDIRECT, "response_type": "code"})
    form = {"client_id": c["client_id"], "client_secret": c["client_secret"]}
    s, _, raw = st.call("POST", st.base("gohighlevel") + "/oauth/token",
                        form=dict(form, grant_type="authorization_code", code=q["code"], user_type="Location"))
    tok = jbody(raw)
    assert s == 200 and tok["userType"] == "Location" and tok["locationId"]
    for _ in range(2):
        s, _, raw = st.call("POST", st.base("gohighlevel") + "/oauth/token",
                            form=dict(form, grant_type="refresh_token", refresh_token=tok["refresh_token"]))
        assert s == 200
    assert st.counters("gohighlevel")["refresh_reuse"]["total"] == 1


def test_ghl_company_token_gets_location_tokens(st):
    c = cfg(st, "gohighlevel")
    q = st.authorize(st.base("gohighlevel") + "/oauth/chooselocation",
                     {"client_id": c["client_id"], "redirect_uri": REDIRECT, "stand_in_user": "agency"})
    s, _, raw = st.call("POST", st.base("gohighlevel") + "/oauth/token",
                        form={"client_id": c["client_id"], "client_secret": c["client_secret"],
                              "grant_type": "authorization_code", "code": q["code"], "user_type": "Company"})
    company = jbody(raw)
    loc = [a["locationId"] for a in st.accounts("gohighlevel", "agency") if "locationId" in a][1]
    s, _, raw = st.call("POST", st.base("gohighlevel") + "/oauth/locationToken",
                        form={"companyId": company["companyId"], "locationId": loc},
                        headers={"Authorization": "Bearer " + company["access_token"], "Version": "2021-07-28"})
    assert s == 201 and jbody(raw)["locationId"] == loc
    s, h, _ = st.call("GET", st.base("gohighlevel") + f"/contacts/?locationId={loc}&limit=5",
                      headers={"Authorization": "Bearer " + jbody(raw)["access_token"], "Version": "2021-07-28"})
    assert s == 200 and h["x-ratelimit-max"] == "100"


def test_google_pkce_offline_refresh_and_revoke(st):
    c = cfg(st, "google-ads")
    verifier, challenge = pkce_pair()
    q = st.authorize(st.base("google-ads") + "/o/oauth2/v2/auth", {
        "client_id": c["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "access_type": "offline",
        "scope": "https://www.googleapis.com/auth/adwords", "code_challenge": challenge,
        "code_challenge_method": "S256", "state": "x"})
    form = {"client_id": c["client_id"], "client_secret": c["client_secret"], "redirect_uri": REDIRECT,
            "grant_type": "authorization_code", "code": q["code"]}
    s, _, raw = st.call("POST", st.base("google-ads") + "/token", form=dict(form, code_verifier="wrong" * 9))
    assert s == 400 and jbody(raw)["error"] == "invalid_grant"
    q = st.authorize(st.base("google-ads") + "/o/oauth2/v2/auth", {
        "client_id": c["client_id"], "redirect_uri": REDIRECT, "response_type": "code", "access_type": "offline",
        "scope": "adwords", "code_challenge": challenge, "code_challenge_method": "S256"})
    s, _, raw = st.call("POST", st.base("google-ads") + "/token", form=dict(form, code=q["code"], code_verifier=verifier))
    tok = jbody(raw)
    assert s == 200 and tok["expires_in"] == 3599 and tok["refresh_token"]
    s, _, raw = st.call("POST", st.base("google-ads") + "/token", form={
        "client_id": c["client_id"], "client_secret": c["client_secret"], "grant_type": "refresh_token",
        "refresh_token": tok["refresh_token"]})
    assert s == 200 and "refresh_token" not in jbody(raw)
    s, _, _ = st.call("POST", st.base("google-ads") + "/revoke", form={"token": tok["refresh_token"]})
    assert s == 200
    s, _, raw = st.call("GET", st.base("google-ads") + "/v17/customers:listAccessibleCustomers",
                        headers={"Authorization": "Bearer " + tok["access_token"],
                                 "developer-token": c["developer_token"]})
    assert s == 401 and "OAUTH_TOKEN_REVOKED" in raw.decode()


def test_klaviyo_requires_pkce_and_basic_client_auth(st):
    c = cfg(st, "klaviyo")
    q = st.authorize(st.base("klaviyo") + "/oauth/authorize", {"client_id": c["client_id"], "redirect_uri": REDIRECT,
                                                                "response_type": "code"})
    assert q["error"] == "invalid_request"
    verifier, challenge = pkce_pair()
    q = st.authorize(st.base("klaviyo") + "/oauth/authorize", {
        "client_id": c["client_id"], "redirect_uri": REDIRECT, "response_type": "code",
        "code_challenge_method": "S256", "code_challenge": challenge})
    basic = "Basic " + base64.b64encode(f"{c['client_id']}:{c['client_secret']}".encode()).decode()
    s, _, raw = st.call("POST", st.base("klaviyo") + "/oauth/token", headers={"Authorization": basic}, form={
        "grant_type": "authorization_code", "code": q["code"], "code_verifier": verifier, "redirect_uri": REDIRECT})
    assert s == 200 and jbody(raw)["expires_in"] == 3600


def test_meta_exchange_for_long_lived_and_reexchange(st):
    c = cfg(st, "meta")
    q = st.authorize(st.base("meta") + "/v21.0/dialog/oauth", {"client_id": c["client_id"], "redirect_uri": REDIRECT})
    s, _, raw = st.call("GET", st.base("meta") + "/v21.0/oauth/access_token?" + "&".join(
        f"{k}={v}" for k, v in {"client_id": c["client_id"], "client_secret": c["client_secret"],
                                "redirect_uri": REDIRECT, "code": q["code"]}.items()))
    short = jbody(raw)
    assert s == 200 and short["expires_in"] <= 7200
    ex = (st.base("meta") + "/v21.0/oauth/access_token?grant_type=fb_exchange_token&client_id="
          f"{c['client_id']}&client_secret={c['client_secret']}&fb_exchange_token=")
    s, _, raw = st.call("GET", ex + short["access_token"])
    long1 = jbody(raw)
    assert s == 200 and long1["expires_in"] > 59 * 86400 and "refresh_token" not in long1
    s, _, raw = st.call("GET", ex + long1["access_token"])
    assert s == 200
    st.fault("meta", "expired")
    s, _, raw = st.call("GET", ex + long1["access_token"])
    err = jbody(raw)["error"]
    assert s == 400 and err["code"] == 190 and err["error_subcode"] == 463


def test_tiktok_json_exchange_and_access_token_header(st):
    c = cfg(st, "tiktok")
    q = st.authorize(st.base("tiktok") + "/portal/auth", {"app_id": c["client_id"], "redirect_uri": REDIRECT, "state": "t"})
    url = st.base("tiktok") + "/open_api/v1.3/oauth2/access_token/"
    s, _, raw = st.call("POST", url, body={"app_id": c["client_id"], "secret": c["client_secret"], "auth_code": q["auth_code"]})
    tok = jbody(raw)
    assert s == 200 and tok["code"] == 0 and tok["data"]["advertiser_ids"]
    s, _, raw = st.call("GET", st.base("tiktok") + "/open_api/v1.3/advertiser/info/?advertiser_ids=[]",
                        headers={"Access-Token": "nope"})
    assert s == 200 and jbody(raw)["code"] == 40105


def test_linkedin_version_header_and_refresh_not_rotated(st):
    c = cfg(st, "linkedin")
    q = st.authorize(st.base("linkedin") + "/oauth/v2/authorization", {"client_id": c["client_id"], "redirect_uri": REDIRECT,
                                                                        "response_type": "code"})
    form = {"client_id": c["client_id"], "client_secret": c["client_secret"]}
    s, _, raw = st.call("POST", st.base("linkedin") + "/oauth/v2/accessToken",
                        form=dict(form, grant_type="authorization_code", code=q["code"], redirect_uri=REDIRECT))
    tok = jbody(raw)
    assert tok["expires_in"] == 60 * 86400 and tok["refresh_token_expires_in"] == 365 * 86400
    s, _, raw = st.call("POST", st.base("linkedin") + "/oauth/v2/accessToken",
                        form=dict(form, grant_type="refresh_token", refresh_token=tok["refresh_token"]))
    assert jbody(raw)["refresh_token"] == tok["refresh_token"]
    auth = {"Authorization": "Bearer " + tok["access_token"]}
    s, _, raw = st.call("GET", st.base("linkedin") + "/rest/adAccounts?q=search", headers=auth)
    assert s == 400 and jbody(raw)["code"] == "VERSION_MISSING"
    s, _, raw = st.call("GET", st.base("linkedin") + "/rest/adAccounts?q=search", headers=dict(auth, **{"Linkedin-Version": "202001"}))
    assert s == 426
    today = st.admin("GET", "/clock")["today"]
    s, _, raw = st.call("GET", st.base("linkedin") + "/rest/adAccounts?q=search",
                        headers=dict(auth, **{"Linkedin-Version": today[:4] + today[5:7]}))
    assert s == 200 and len(jbody(raw)["elements"]) == 2


def test_api_keys_and_their_revocation(st):
    s, _, raw = st.call("GET", st.base("stripe") + "/v1/account", headers={"Authorization": "Bearer sk_test_abcdefgh12345"})
    assert s == 200 and jbody(raw)["id"].startswith("acct_")
    s, _, raw = st.call("GET", st.base("stripe") + "/v1/account", headers={"Authorization": "Bearer bogus"})
    assert s == 401 and jbody(raw)["error"]["type"] == "invalid_request_error"
    st.fault("stripe", "revoked", key="sk_test_abcdefgh12345")
    s, _, raw = st.call("GET", st.base("stripe") + "/v1/account", headers={"Authorization": "Bearer sk_test_abcdefgh12345"})
    assert s == 401 and "Expired API Key" in jbody(raw)["error"]["message"]
    key = "tw-" + "k" * 30
    s, _, _ = st.call("GET", st.base("triplewhale") + "/api/v2/users/api-keys/me", headers={"x-api-key": key})
    assert s == 200
    s, _, _ = st.call("GET", st.base("klaviyo") + "/api/accounts/", headers={
        "Authorization": "Klaviyo-API-Key pk_" + "a" * 30, "revision": "2025-10-15"})
    assert s == 200


def test_expired_and_revoked_tokens_answer_as_the_provider_does(st):
    c = cfg(st, "hubspot")
    q = st.authorize(st.base("hubspot") + "/oauth/authorize", {"client_id": c["client_id"], "redirect_uri": REDIRECT})
    s, _, raw = st.call("POST", st.base("hubspot") + "/oauth/v1/token", form={
        "grant_type": "authorization_code", "client_id": c["client_id"], "client_secret": c["client_secret"],
        "redirect_uri": REDIRECT, "code": q["code"]})
    tok = jbody(raw)
    assert tok["expires_in"] == 1800
    auth = {"Authorization": "Bearer " + tok["access_token"]}
    assert st.call("GET", st.base("hubspot") + "/crm/v3/objects/contacts?limit=1", headers=auth)[0] == 200
    st.clock(advance_s=1900)
    s, _, raw = st.call("GET", st.base("hubspot") + "/crm/v3/objects/contacts?limit=1", headers=auth)
    assert s == 401 and jbody(raw)["category"] == "EXPIRED_AUTHENTICATION"
    s, _, raw = st.call("POST", st.base("hubspot") + "/oauth/v1/token", form={
        "grant_type": "refresh_token", "client_id": c["client_id"], "client_secret": c["client_secret"],
        "refresh_token": tok["refresh_token"]})
    assert s == 200 and jbody(raw)["refresh_token"] == tok["refresh_token"]
    assert st.call("DELETE", st.base("hubspot") + "/oauth/v1/refresh-tokens/" + tok["refresh_token"])[0] == 204
    s, _, raw = st.call("GET", st.base("hubspot") + "/crm/v3/objects/contacts?limit=1",
                        headers={"Authorization": "Bearer " + jbody(raw)["access_token"]})
    assert s == 401 and jbody(raw)["category"] == "INVALID_AUTHENTICATION"
