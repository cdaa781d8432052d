"""Rate limits answered as each provider does, and counted as violations."""

import json

from standin.client import jbody

DEV = "standin-developer-token"


def mint(st, prefix, user="demo", **extra):
    return st.admin("POST", f"/tokens/{prefix}", {"user": user, "extra": extra})["access_token"]


def burst(st, n, method, url, **kw):
    return [st.call(method, url, **kw) for _ in range(n)]


def test_meta_code_17_with_business_use_case_usage(st):
    st.config("meta", insights_calls_per_hour=3)
    token = mint(st, "meta")
    acct = st.accounts("meta")[0]["id"]
    got = burst(st, 4, "GET", st.base("meta") + f"/v21.0/act_{acct}/campaigns?access_token={token}")
    assert [s for s, _, _ in got] == [200, 200, 200, 400]
    err = jbody(got[-1][2])["error"]
    assert err["code"] == 17 and err["error_subcode"] == 2446079
    usage = json.loads(got[-1][1]["x-business-use-case-usage"])
    entry = list(usage.values())[0][0]
    assert entry["call_count"] == 100 and entry["estimated_time_to_regain_access"] >= 1
    assert st.counters("meta")["violations"]["total"] == 1


def test_tiktok_40100_in_http_200(st):
    st.config("tiktok", qps=2)
    token = mint(st, "tiktok")
    adv = st.accounts("tiktok")[0]["id"]
    got = burst(st, 3, "GET", st.base("tiktok") + f"/open_api/v1.3/campaign/get/?advertiser_id={adv}",
                headers={"Access-Token": token})
    assert [s for s, _, _ in got] == [200, 200, 200]
    assert [jbody(b)["code"] for _, _, b in got] == [0, 0, 40100]
    assert st.counters("tiktok")["violations"]["total"] == 1


def test_google_resource_exhausted(st):
    st.config("google-ads", qps_burst=2, qps=0.001)
    token = mint(st, "google-ads")
    cid = st.accounts("google-ads")[0]["id"]
    got = burst(st, 3, "POST", st.base("google-ads") + f"/v17/customers/{cid}/googleAds:search",
                body={"query": "SELECT customer.id FROM customer"},
                headers={"Authorization": "Bearer " + token, "developer-token": DEV})
    assert [s for s, _, _ in got] == [200, 200, 429]
    err = jbody(got[-1][2])["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED"
    detail = err["details"][0]["errors"][0]
    assert detail["errorCode"] == {"quotaError": "RESOURCE_TEMPORARILY_EXHAUSTED"}
    assert detail["details"]["quotaErrorDetails"]["retryDelay"] == "30s"


def test_hubspot_headers_and_ghl_headers_count_down(st):
    st.config("hubspot", burst_max=3)
    hub = st.accounts("hubspot")[0]["hub_id"]
    token = mint(st, "hubspot", hub_id=int(hub))
    got = burst(st, 4, "GET", st.base("hubspot") + "/crm/v3/objects/deals?limit=1",
                headers={"Authorization": "Bearer " + token})
    assert [h.get("x-hubspot-ratelimit-remaining") for _, h, _ in got[:3]] == ["2", "1", "0"]
    assert got[3][0] == 429 and jbody(got[3][2])["policyName"] == "TEN_SECONDLY_ROLLING"
    st.config("gohighlevel", burst_max=2)
    loc = st.accounts("gohighlevel")[0]["locationId"]
    token = mint(st, "gohighlevel", userType="Location", locationId=loc, companyId="c")
    got = burst(st, 3, "GET", st.base("gohighlevel") + f"/contacts/?locationId={loc}&limit=1",
                headers={"Authorization": "Bearer " + token, "Version": "2021-07-28"})
    assert [s for s, _, _ in got] == [200, 200, 429]
    assert got[0][1]["x-ratelimit-remaining"] == "1" and got[0][1]["x-ratelimit-limit-daily"] == "200000"


def test_klaviyo_retry_after_and_ignoring_it_is_counted(st):
    st.config("klaviyo", tier_scale=0.01)     # accounts: 1/s burst, 1/min steady
    token = mint(st, "klaviyo")
    hdr = {"Authorization": "Bearer " + token, "revision": "2025-10-15"}
    got = burst(st, 3, "GET", st.base("klaviyo") + "/api/accounts/", headers=hdr)
    assert [s for s, _, _ in got] == [200, 429, 429]
    assert int(got[1][1]["retry-after"]) >= 1
    assert jbody(got[1][2])["errors"][0]["code"] == "throttled"
    c = st.counters("klaviyo")
    assert c["violations"]["total"] == 2 and c["retry_after_ignored"]["total"] == 1


def test_stripe_and_shopify_rest_429(st):
    hdr = {"Authorization": "Bearer sk_test_limits123456"}
    st.call("GET", st.base("stripe") + "/v1/charges?limit=1", headers=hdr)   # makes the data set first
    st.config("stripe", test_reads_per_s=2)
    got = burst(st, 3, "GET", st.base("stripe") + "/v1/charges?limit=1",
                headers={"Authorization": "Bearer sk_test_limits123456"})
    assert [s for s, _, _ in got] == [200, 200, 429]
    assert jbody(got[2][2])["error"]["code"] == "rate_limit"
    st.config("shopify", rest_bucket=2, rest_leak_per_s=0.5)
    token = mint(st, "shopify", shop="acme")
    got = burst(st, 3, "GET", st.base("shopify") + "/acme/admin/api/2025-01/shop.json",
                headers={"X-Shopify-Access-Token": token})
    assert [s for s, _, _ in got] == [200, 200, 429]
    assert got[1][1]["x-shopify-shop-api-call-limit"] == "2/2" and got[2][1]["retry-after"] == "2.0"


def test_faults_5xx_malformed_and_drop(st):
    token = mint(st, "meta")
    url = st.base("meta") + f"/v21.0/me?access_token={token}"
    st.fault("meta", "5xx", status=503, count=1)
    st.fault("meta", "malformed", count=1)
    s, _, raw = st.call("GET", url)
    assert s == 503 and jbody(raw)["error"]["is_transient"] is True
    s, _, raw = st.call("GET", url)
    assert s == 200
    try:
        json.loads(raw)
        raise AssertionError("the body should be cut")
    except ValueError:
        pass
    assert st.call("GET", url)[0] == 200
    assert st.counters("meta")["faults"] == {"5xx": 1, "malformed": 1}
