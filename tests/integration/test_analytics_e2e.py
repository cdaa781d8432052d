"""From the provider stand-ins through integrations to the analytics
dashboard, end to end over HTTP against the real broker and store.

A tenant connects Google Ads (the stand-in's user acme: two accounts) and
Shopify (shop acme-e2e) as a browser would; the integrations group syncs them
(three days) and publishes its events; the analytics group follows them.
The dashboard's figures are then checked against the stand-in's ground
truth for the same days (its /_admin/truth routes, not our code), and the
tenant's days close across both providers (analytics.day.closed) once the
first syncs completed, and last-click attribution credits the ad providers
the stand-in's orders came from (the touchpoints integrations read).
"""

import collections
import time

import pytest

from conftest import HOST, free_port, wait_status
from test_integrations_kit import (Api, Standin, Tenant, day_shift, events_of,
                                   location_query, read_events, settings, today)

# The stand-in's ad provider names -> ours.
STANDIN_PROVIDER = {"google_ads": "google_ads", "meta": "meta_ads", "tiktok": "tiktok_ads",
                    "linkedin": "linkedin_ads", "youtube": "youtube"}
AD_KEYS = ("spend", "impressions", "clicks", "conversions", "conversion_value")


class NS:
    pass


@pytest.fixture(scope="module")
def e2e(module_procs, session):
    ns = NS()
    ns.session = session
    ns.standin = Standin(module_procs)
    port = free_port()
    ns.edge_url = f"http://{HOST}:{port}"
    ns.analytics = module_procs.start_group("analytics")
    ns.integrations = module_procs.start_group(
        "integrations", env=settings(ns.standin, ns.edge_url))
    ns.edge = module_procs.start_edge(port=port)
    wait_status(ns.edge.url, "integrations")
    wait_status(ns.edge.url, "analytics")
    ns.api = Api(ns.edge.url)
    ns.a = Tenant(session, "a")
    # A shop of its own: a webhook reaches every tenant connected to its
    # shop, and test_integrations sends some for shop acme.
    for p, shop in (("google_ads", None), ("shopify", "acme-e2e")):
        r = ns.api.connect(ns.a, p, "acme", shop=shop)
        assert r.status == 302 and location_query(r)["status"] == "connected", r
    ns.google = ns.api.wait_synced(ns.a, "google_ads", 2, timeout=180)
    ns.shop = ns.api.wait_synced(ns.a, "shopify", 1, timeout=180)
    # The synced window (OMNIFY_INTEGRATIONS_INITIAL_DAYS=3).
    ns.since, ns.until = day_shift(today(), -2), today()
    return ns


def truth(ns):
    """Per currency, the stand-in's figures over the window."""
    out = collections.defaultdict(lambda: dict.fromkeys(
        AD_KEYS + ("net", "gross", "refunded", "orders", "new_customers"), 0))
    for c in ns.google:
        t = ns.standin.truth("google_ads", account=c["account_id"], since=ns.since,
                             until=ns.until)
        total = t["values"]["total"]
        for k in AD_KEYS:
            out[t["currency"]][k] += total[k]
    acct = ns.shop[0]["account_id"].replace(".myshopify.com", "")
    t = ns.standin.truth("shopify", account=acct, since=ns.since, until=ns.until)
    for k in ("net", "gross", "refunded", "orders", "new_customers"):
        out[t["currency"]][k] += t["values"][k]
    return dict(out)


def dashboard(ns):
    r = ns.api.call("GET", f"/api/analytics/dashboard?from={ns.since}&to={ns.until}",
                    ns.a, "viewer")
    assert r.status == 200, r
    return r.body


def kpis(body):
    return {c["currency"]: c["kpis"] for c in body["currencies"]}


def test_dashboard_equals_the_stand_ins_ground_truth(e2e):
    want = truth(e2e)
    assert any(v["spend"] for v in want.values()), want
    # The group follows the events as they come: wait until the spend of
    # every currency is there, then compare everything.
    deadline = time.monotonic() + 120
    got = {}
    while time.monotonic() < deadline:
        body = dashboard(e2e)
        got = kpis(body)
        if all(got.get(c, {}).get("spend", {}).get("value") == v["spend"]
               and got.get(c, {}).get("orders", {}).get("value") == v["orders"]
               for c, v in want.items()):
            break
        time.sleep(1)
    assert set(got) == set(want), (got.keys(), want.keys())
    for cur, w in want.items():
        k = got[cur]
        for name in ("spend", "conversions", "conversion_value"):
            assert k[name]["value"] == w[name], (cur, name, k[name], w[name])
        if w["impressions"]:
            assert k["ctr"]["value"] == pytest.approx(w["clicks"] / w["impressions"],
                                                      rel=1e-9)
        if w["clicks"]:
            assert k["cpc"]["value"] == pytest.approx(w["spend"] / w["clicks"], rel=1e-9)
        assert k["revenue"]["value"] == w["net"], cur
        assert k["gross_revenue"]["value"] == w["gross"], cur
        assert k["refunds"]["value"] == w["refunded"], cur
        assert k["orders"]["value"] == w["orders"], cur
        assert k["new_customers"]["value"] == w["new_customers"], cur
        if w["spend"] and w["net"]:
            assert k["mer"]["value"] == pytest.approx(w["net"] / w["spend"], rel=1e-9)
    # Counts are summed across currencies; money never is.
    totals = body["totals"]
    for name in ("impressions", "clicks", "orders"):
        assert totals[name]["value"] == sum(w[name] for w in want.values()), name
    assert "spend" not in totals


def test_days_close_across_both_providers(e2e):
    """The connections completed their first syncs: the tenant's days
    through the last one the close lag allows are announced once each,
    naming the providers counted."""
    deadline = time.monotonic() + 60
    closed = []
    while time.monotonic() < deadline:
        closed = events_of(read_events(e2e.session, "analytics.events"),
                           "analytics.day.closed", e2e.a)
        if closed:
            break
        time.sleep(1)
    assert closed, "no analytics.day.closed for the tenant"
    days = [e.body["day"] for e in closed]
    assert len(days) == len(set(days)), days
    expect = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 12 * 3600 - 86400))
    assert max(days) == expect, days
    # Connection events are ordered per account only: a day may close on
    # Google Ads' syncs before Shopify's connection is seen.
    for e in closed:
        p = e.body["providers"]
        assert p and p == sorted(p) and set(p) <= {"google_ads", "shopify"}, e.body


def test_last_click_credits_the_ad_campaigns_the_stand_in_credits(e2e):
    """Shopify's orders reach analytics with the touchpoints integrations
    read from them: last-click orders per ad provider equal the stand-in's
    orders per campaign, summed by provider."""
    acct = e2e.shop[0]["account_id"].replace(".myshopify.com", "")
    t = e2e.standin.truth("shopify", account=acct, since=e2e.since, until=e2e.until)
    want = collections.Counter()
    for c in t["values"]["by_campaign"].values():
        want[STANDIN_PROVIDER.get(c["provider"], c["provider"])] += c["orders"]
    assert want, "no order of the window came from an ad campaign"
    r = e2e.api.call("GET", f"/api/analytics/attribution?model=last_click&from={e2e.since}"
                     f"&to={e2e.until}", e2e.a, "viewer")
    assert r.status == 200, r
    got = collections.Counter()
    for cur in r.body["currencies"]:
        for row in cur["rows"]:
            if row["channel"] in STANDIN_PROVIDER.values():
                got[row["channel"]] += row["orders"]
    assert dict(got) == dict(want), (r.body, t["values"]["by_campaign"])
