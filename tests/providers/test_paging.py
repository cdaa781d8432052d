"""Every provider's paging walked to the end, and what it served summed and
compared with the ground truth the admin API gives."""

import datetime as dt
import json
import time
import urllib.parse

from standin.client import jbody

DEV = "standin-developer-token"


def mint(st, prefix, user="demo", **extra):
    return st.admin("POST", f"/tokens/{prefix}", {"user": user, "extra": extra})["access_token"]


def span(st, days):
    today = dt.date.fromisoformat(st.admin("GET", "/clock")["today"])
    return today - dt.timedelta(days=days), today - dt.timedelta(days=1)


def test_google_ads_search_pages_of_10000_match_truth(st):
    token = mint(st, "google-ads", offline=True)
    cid = st.accounts("google-ads")[0]["id"]
    since, until = span(st, 150)
    q = ("SELECT campaign.id, campaign.advertising_channel_type, metrics.cost_micros, metrics.conversions, "
         f"segments.date FROM campaign WHERE segments.date BETWEEN '{since}' AND '{until}'")
    url = st.base("google-ads") + f"/v17/customers/{cid}/googleAds:search"
    hdr = {"Authorization": "Bearer " + token, "developer-token": DEV}
    body, rows, pages = {"query": q}, [], 0
    while True:
        s, _, raw = st.call("POST", url, body=body, headers=hdr)
        assert s == 200, raw[:300]
        out = jbody(raw)
        pages += 1
        assert len(out["results"]) == 10000 or "nextPageToken" not in out
        rows += out["results"]
        if "nextPageToken" not in out:
            break
        body = {"query": q, "pageToken": out["nextPageToken"]}
    truth = st.truth("google-ads", account=cid, since=since, until=until)["values"]["total"]
    assert pages >= 2 and len(rows) == truth["rows"]
    assert sum(int(r["metrics"]["costMicros"]) for r in rows) == truth["spend"] * 10000
    assert sum(r["metrics"]["conversions"] for r in rows) == truth["conversions"]
    video = [r for r in rows if r["campaign"]["advertisingChannelType"] == "VIDEO"]
    vt = st.truth("youtube", account=cid, since=since, until=until, channel="VIDEO")["values"]["total"]
    assert len(video) == vt["rows"]


def test_late_conversions_grow_for_days_after(st):
    cid = st.accounts("meta")[0]["id"]
    today = dt.date.fromisoformat(st.admin("GET", "/clock")["today"])
    day = str(today - dt.timedelta(days=1))
    seen = st.truth("meta", account=cid, since=day, until=day)["values"]["total"]["conversions"]
    final = st.truth("meta", account=cid, since=day, until=day, final=1)["values"]["total"]["conversions"]
    st.clock(advance_s=5 * 86400)
    later = st.truth("meta", account=cid, since=day, until=day)["values"]["total"]["conversions"]
    assert seen < final and later == final


def test_meta_insights_cursor_paging(st):
    token = mint(st, "meta")
    acct = st.accounts("meta")[0]["id"]
    since, until = span(st, 20)
    q = {"level": "campaign", "time_increment": "1", "limit": "200", "access_token": token,
         "fields": "campaign_id,spend,actions,date_start",
         "time_range": json.dumps({"since": str(since), "until": str(until)})}
    url = st.base("meta") + f"/v21.0/act_{acct}/insights?" + urllib.parse.urlencode(q)
    rows = []
    while url:
        s, h, raw = st.call("GET", url)
        assert s == 200 and "x-business-use-case-usage" in h
        out = jbody(raw)
        rows += out["data"]
        url = out.get("paging", {}).get("next")
    truth = st.truth("meta", account=acct, since=since, until=until)["values"]["total"]
    assert len(rows) == truth["rows"]
    assert round(sum(float(r["spend"]) for r in rows) * 100) == truth["spend"]


def test_tiktok_page_and_page_size(st):
    token = mint(st, "tiktok")
    adv = st.accounts("tiktok")[0]["id"]
    since, until = span(st, 30)
    rows, page = [], 1
    while True:
        q = {"advertiser_id": adv, "report_type": "BASIC", "data_level": "AUCTION_CAMPAIGN",
             "dimensions": json.dumps(["campaign_id", "stat_time_day"]),
             "metrics": json.dumps(["spend", "impressions"]), "start_date": str(since),
             "end_date": str(until), "page": page, "page_size": 1000}
        s, _, raw = st.call("GET", st.base("tiktok") + "/open_api/v1.3/report/integrated/get/?" +
                            urllib.parse.urlencode(q), headers={"Access-Token": token})
        out = jbody(raw)
        assert out["code"] == 0, out
        rows += out["data"]["list"]
        if page >= out["data"]["page_info"]["total_page"]:
            break
        page += 1
    truth = st.truth("tiktok", account=adv, since=since, until=until)["values"]["total"]
    assert len(rows) == truth["rows"]
    assert sum(int(r["metrics"]["impressions"]) for r in rows) == truth["impressions"]
    q["start_date"] = str(since - dt.timedelta(days=40))
    s, _, raw = st.call("GET", st.base("tiktok") + "/open_api/v1.3/report/integrated/get/?" +
                        urllib.parse.urlencode(q), headers={"Access-Token": token})
    assert s == 200 and jbody(raw)["code"] == 40002


def test_linkedin_analytics_in_one_answer(st):
    token = mint(st, "linkedin")
    acct = st.accounts("linkedin")[0]["id"]
    since, until = span(st, 30)
    today = st.admin("GET", "/clock")["today"]
    q = (f"q=analytics&pivot=CAMPAIGN&timeGranularity=DAILY&dateRange=(start:(year:{since.year},month:"
         f"{since.month},day:{since.day}),end:(year:{until.year},month:{until.month},day:{until.day}))"
         f"&accounts=List(urn%3Ali%3AsponsoredAccount%3A{acct})&fields=costInLocalCurrency,impressions,pivotValues,dateRange")
    s, _, raw = st.call("GET", st.base("linkedin") + "/rest/adAnalytics?" + q, headers={
        "Authorization": "Bearer " + token, "Linkedin-Version": today[:4] + today[5:7]})
    assert s == 200
    els = jbody(raw)["elements"]
    truth = st.truth("linkedin", account=acct, since=since, until=until)["values"]["total"]
    assert len(els) == truth["rows"] and sum(e["impressions"] for e in els) == truth["impressions"]


def test_shopify_graphql_cursors_match_orders_truth(st):
    token = mint(st, "shopify", shop="acme")
    st.config("shopify", gql_restore_per_s=1000)
    since, until = span(st, 90)
    query = """query($after: String) { orders(first: 50, after: $after, sortKey: CREATED_AT,
      query: "created_at:>='%sT00:00:00Z' created_at:<'%sT00:00:00Z'") {
      edges { cursor node { id totalPriceSet { shopMoney { amount currencyCode } }
        lineItems(first: 5) { nodes { quantity } }
        customerJourneySummary { firstVisit { utmParameters { source campaign } } } } }
      pageInfo { hasNextPage endCursor } } }""" % (since, until + dt.timedelta(days=1))
    url = st.base("shopify") + "/acme/admin/api/2025-01/graphql.json"
    after, orders, costs = None, [], []
    while True:
        if costs:   # pace by throttleStatus, as a client must: no THROTTLED answer
            c = costs[-1]
            short = c["requestedQueryCost"] - c["throttleStatus"]["currentlyAvailable"]
            if short > 0:
                time.sleep(short / c["throttleStatus"]["restoreRate"] + 0.05)
        s, _, raw = st.call("POST", url, body={"query": query, "variables": {"after": after}},
                            headers={"X-Shopify-Access-Token": token})
        out = jbody(raw)
        assert s == 200 and "errors" not in out, out
        costs.append(out["extensions"]["cost"])
        conn = out["data"]["orders"]
        orders += [e["node"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    truth = st.truth("shopify", account="acme", since=since, until=until)["values"]
    assert len(orders) == truth["orders"] and len(orders) > 200
    gross = sum(round(float(o["totalPriceSet"]["shopMoney"]["amount"]) * 100) for o in orders)
    assert gross == truth["gross"]
    assert costs[0]["requestedQueryCost"] > costs[0]["actualQueryCost"] > 0
    assert costs[0]["throttleStatus"]["maximumAvailable"] == 2000.0
    assert st.counters("shopify")["violations"] == {}


def test_stripe_starting_after_has_more(st):
    key = "sk_test_paging12345678"
    acct = jbody(st.call("GET", st.base("stripe") + "/v1/account", headers={"Authorization": "Bearer " + key})[2])["id"]
    since, until = span(st, 60)
    lo = int(dt.datetime.combine(since, dt.time(), dt.timezone.utc).timestamp())
    hi = int(dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp())
    charges, after = [], None
    while True:
        url = st.base("stripe") + f"/v1/charges?limit=100&created[gte]={lo}&created[lt]={hi}"
        s, _, raw = st.call("GET", url + (f"&starting_after={after}" if after else ""),
                            headers={"Authorization": "Bearer " + key})
        out = jbody(raw)
        assert s == 200 and out["object"] == "list"
        charges += out["data"]
        if not out["has_more"]:
            break
        after = out["data"][-1]["id"]
    truth = st.truth("stripe", account=acct, since=since, until=until)["values"]
    assert len(charges) == truth["orders"] and sum(c["amount"] for c in charges) == truth["gross"]
    assert sum(c["amount_refunded"] for c in charges) == truth["refunded"]


def test_crm_paging_hubspot_klaviyo_ghl(st):
    hub = st.accounts("hubspot")[0]["hub_id"]
    token = mint(st, "hubspot", hub_id=int(hub))
    url, n = st.base("hubspot") + "/crm/v3/objects/contacts?limit=100&properties=lifecyclestage", 0
    stages = {}
    while url:
        s, _, raw = st.call("GET", url, headers={"Authorization": "Bearer " + token})
        out = jbody(raw)
        for r in out["results"]:
            stages[r["properties"]["lifecyclestage"]] = stages.get(r["properties"]["lifecyclestage"], 0) + 1
        n += len(out["results"])
        url = out.get("paging", {}).get("next", {}).get("link")
    truth = st.truth("hubspot", account=hub)["values"]
    assert n == truth["contacts"] and stages == {k: v for k, v in truth["by_stage"].items() if v}

    kl = st.accounts("klaviyo")[0]["account"]
    token = mint(st, "klaviyo")
    url, n = st.base("klaviyo") + "/api/profiles/?page[size]=100", 0
    while url:
        s, h, raw = st.call("GET", url, headers={"Authorization": "Bearer " + token, "revision": "2025-10-15"})
        assert s == 200 and "ratelimit-remaining" in h, raw[:200]
        out = jbody(raw)
        n += len(out["data"])
        url = out["links"]["next"]
    assert n == st.truth("klaviyo", account=kl)["values"]["contacts"]

    loc = st.accounts("gohighlevel")[0]["locationId"]
    token = mint(st, "gohighlevel", userType="Location", locationId=loc, companyId="c")
    url, n = st.base("gohighlevel") + f"/contacts/?locationId={loc}&limit=100", 0
    while url:
        s, h, raw = st.call("GET", url, headers={"Authorization": "Bearer " + token, "Version": "2021-07-28"})
        assert s == 200, raw[:200]
        out = jbody(raw)
        n += len(out["contacts"])
        url = out["meta"]["nextPageUrl"]
    assert n == st.truth("gohighlevel", account=loc)["values"]["contacts"]


def test_triplewhale_summary_equals_truth(st):
    since, until = span(st, 30)
    s, _, raw = st.call("POST", st.base("triplewhale") + "/api/v2/summary-page/get-data",
                        body={"shopDomain": "acme.myshopify.com", "period": {"start": str(since), "end": str(until)}},
                        headers={"x-api-key": "tw-" + "k" * 30})
    assert s == 200
    got = {m["id"]: m["values"]["current"] for m in jbody(raw)["metrics"]}
    truth = st.truth("triplewhale", account="acme.myshopify.com", since=since, until=until)["values"]
    assert got == truth and got["blendedAds"] > 0
