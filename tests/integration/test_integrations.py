"""The integrations group over HTTP, against the real broker and store and
the provider stand-ins (tests/providers), as a client and a browser would.

One tenant connects all eleven providers (OAuth as the stand-in's user
"acme", API keys for Stripe and TripleWhale); each first sync's events are
read back from integrations.events and compared with the stand-in's ground
truth over the same window. Then: the callback's refusals, roles, another
tenant, manual syncs and backfills, pacing (0 violations at the stand-in),
refresh under two concurrent syncs (rotating Shopify tokens), revoked
credentials (needs_reauth), webhooks of every provider that sends them
(good and bad signatures, stale timestamps, duplicates), disconnecting,
and last, that no token or key is found in any log, reply, event or, in
clear, in the store.

Windows are small (three days) to keep the run short; the data sets hold
two years."""

import collections
import time

import pytest

from conftest import HOST, free_port, http, wait_status
from test_integrations_kit import (FRONTEND, OAUTH, PROVIDERS, Api, Standin, Tenant,
                                   day_shift, events_of, latest, location_query,
                                   read_events, settings, store, store_docs, today,
                                   wait_events)

AD = ["google_ads", "youtube", "meta_ads", "tiktok_ads", "linkedin_ads"]
STRIPE_KEY = "sk_test_integrationtests0123456789"
TW_KEY = "tw_integration_tests_key_0123456789"
KLAVIYO_KEY = "pk_integrationtestkey0123456789"


class NS:
    pass


@pytest.fixture(scope="module")
def ig(module_procs, session):
    ns = NS()
    ns.session = session
    ns.standin = Standin(module_procs)
    port = free_port()
    ns.edge_url = f"http://{HOST}:{port}"
    ns.env = settings(ns.standin, ns.edge_url)
    ns.edge = module_procs.start_edge(port=port)
    ns.group = module_procs.start_group("integrations", env=ns.env)
    wait_status(ns.edge.url, "integrations")
    ns.api = Api(ns.edge.url)
    ns.a = Tenant(session, "a")
    return ns


@pytest.fixture(scope="module")
def connected(ig):
    """Tenant a connects every provider as the stand-in's user acme; every
    first sync done."""
    api, a = ig.api, ig.a
    for p in OAUTH:
        r = api.connect(a, p, "acme", shop="acme" if p == "shopify" else None)
        assert r.status == 302, r
        q = location_query(r)
        assert r.header("Location").startswith(FRONTEND), r
        assert q["status"] == "connected" and q["provider"] == p, q
    r = api.call("POST", "/api/integrations/stripe/keys", a, body={"api_key": STRIPE_KEY})
    assert r.status == 201 and r.body["provider"] == "stripe", r
    r = api.call("POST", "/api/integrations/triplewhale/keys", a,
                 body={"api_key": TW_KEY, "shop": "acme.myshopify.com"})
    assert r.status == 201, r
    expected = {p: 2 if p in AD else 1 for p in PROVIDERS}
    for p, n in expected.items():
        api.wait_synced(a, p, n, timeout=180)
    ig.events = read_events(ig.session)
    ig.window = (day_shift(today(), -2), today())
    return ig


# ---------------------------------------------------------------------------
# Connect, sync, events against the ground truth
# ---------------------------------------------------------------------------

def test_providers_are_offered(ig):
    r = ig.api.call("GET", "/api/integrations/providers", ig.a, "viewer")
    assert r.status == 200, r
    by = {p["name"]: p for p in r.body["providers"]}
    assert set(by) == set(PROVIDERS)
    assert all(p["configured"] for p in by.values()), by
    assert by["stripe"]["auth"] == "api_key" and by["klaviyo"]["auth"] == "oauth_or_key"
    assert by["klaviyo"]["pkce"] and by["google_ads"]["pkce"]
    assert by["shopify"]["webhooks"] and not by["linkedin_ads"]["webhooks"]


def test_every_connection_is_listed_with_its_sync(connected):
    conns = connected.api.connections(connected.a)
    assert len(conns) == 16, [c["provider"] for c in conns]
    for c in conns:
        assert c["status"] == "connected", c
        assert c["last_sync_status"] == "completed", c
        assert c["synced_until"] == today(), c
        assert "next_sync_at" in c, c
        assert not any(k in c for k in ("creds", "access_token", "refresh_token")), c


def test_lifecycle_events_carry_the_tenant_and_the_account_key(connected):
    evs = connected.events
    a = connected.a
    done = events_of(evs, "integrations.sync.completed", a)
    assert len(done) == 16, len(done)
    assert all(e.body["first_sync"] for e in done)
    assert len(events_of(evs, "integrations.connection.connected", a)) == 16
    for e in events_of(evs, "integrations.", a):
        assert e.key == f"{a.id}|{e.body['provider']}|{e.body['account_id']}", e
    # A sync's records come before its completion (same key, same order).
    order = [e for e in evs if e.headers.get("tenant") == a.id]
    pos = {id(e): i for i, e in enumerate(order)}
    for d in done:
        acct = (d.body["provider"], d.body["account_id"])
        recs = [e for e in order if e.headers["type"].endswith(".recorded")
                and "connection" not in e.headers["type"]
                and (e.body.get("provider"), e.body.get("account_id")) == acct]
        assert all(pos[id(r)] < pos[id(d)] for r in recs), acct


@pytest.mark.parametrize("provider", AD)
def test_ad_metrics_match_the_ground_truth(connected, provider):
    since, until = connected.window
    accounts = [c["account_id"] for c in connected.api.connections(connected.a, provider)]
    assert len(accounts) == 2
    for acct in accounts:
        evs = events_of(connected.events, "integrations.ad_metrics.recorded", connected.a,
                        provider=provider, account_id=acct)
        rows = [b for b in latest(evs, lambda b: (b["campaign_id"], b["day"])).values()
                if since <= b["day"] <= until]
        q = {"account": acct, "since": since, "until": until}
        if provider == "youtube":
            q["channel"] = "VIDEO"
        t = connected.standin.truth(provider, **q)
        total = t["values"]["total"]
        assert len(rows) == total["rows"], (acct, len(rows), total)
        assert sum(r["spend_minor"] for r in rows) == total["spend"]
        assert sum(r["impressions"] for r in rows) == total["impressions"]
        assert sum(r["clicks"] for r in rows) == total["clicks"]
        assert round(sum(r["conversions"] for r in rows)) == total["conversions"]
        assert sum(r["conversion_value_minor"] for r in rows) == total["conversion_value"]
        assert sum(r.get("video_views", 0) for r in rows) == total["video_views"]
        assert all(r["currency"] == t["currency"] for r in rows)
        assert all(r["campaign_name"] for r in rows)


@pytest.mark.parametrize("provider", ["shopify", "stripe"])
def test_orders_match_the_ground_truth(connected, provider):
    since, until = connected.window
    conn = connected.api.connections(connected.a, provider)[0]
    acct = conn["account_id"]
    evs = events_of(connected.events, "integrations.order.recorded", connected.a,
                    provider=provider)
    orders = [b for b in latest(evs, lambda b: b["order_id"]).values()
              if since <= b["day"] <= until]
    t = connected.standin.truth(provider, account=acct.replace(".myshopify.com", ""),
                                since=since, until=until)["values"]
    assert len(orders) == t["orders"]
    assert sum(o["total_minor"] for o in orders) == t["gross"]
    assert sum(o["refunded_minor"] for o in orders) == t["refunded"]
    assert sum(o["new_customer"] for o in orders) == t["new_customers"]
    if provider == "shopify":
        assert sum(o["subtotal_minor"] for o in orders) == t["subtotal"]
        assert sum(len(o["line_items"]) for o in orders) == t["line_items"]
        assert sum(li["quantity"] for o in orders for li in o["line_items"]) == t["units"]
    # Attribution: every campaign the truth credits is a touchpoint here.
    campaigns = collections.Counter(tp.get("campaign_id") for o in orders
                                    for tp in o["touchpoints"] if tp.get("campaign_id"))
    assert dict(campaigns) == {c: v["orders"] for c, v in t["by_campaign"].items()}


@pytest.mark.parametrize("provider", ["hubspot", "klaviyo", "gohighlevel"])
def test_contacts_match_the_ground_truth(connected, provider):
    since, until = connected.window
    acct = connected.api.connections(connected.a, provider)[0]["account_id"]
    evs = events_of(connected.events, "integrations.contact.recorded", connected.a,
                    provider=provider)
    contacts = [b for b in latest(evs, lambda b: b["contact_id"]).values()
                if since <= b["created_at"][:10] <= until]
    t = connected.standin.truth(provider, account=acct, since=since, until=until)["values"]
    assert len(contacts) == t["contacts"]
    stages = collections.Counter(c["lifecycle_stage"] for c in contacts)
    assert dict(stages) == {k: v for k, v in t["by_stage"].items() if v}
    for c in contacts:
        assert "@" not in c["email_domain"] and "." in c["email_domain"], c


def test_deals_are_published(connected):
    for provider in ("hubspot", "gohighlevel"):
        for d in events_of(connected.events, "integrations.deal.recorded", connected.a,
                           provider=provider):
            b = d.body
            assert b["amount_minor"] > 0 and b["stage"], b
            assert ("won" in b) == ("closed_at" in b), b


def test_triplewhale_summaries_match(connected):
    evs = events_of(connected.events, "integrations.summary.recorded", connected.a)
    days = latest(evs, lambda b: b["day"])
    since, until = connected.window
    assert sorted(days) == [since, day_shift(since, 1), until]
    for day, s in days.items():
        t = connected.standin.truth("triplewhale", account="acme.myshopify.com",
                                    since=day, until=day)
        v = t["values"]
        assert s["currency"] == t["currency"]
        assert s["spend_minor"] == round(v["blendedAds"] * 100)
        assert s["revenue_minor"] == round(v["sales"] * 100)
        assert s["orders"] == v["orders"] and s["new_customers"] == v["newCustomers"]


def test_a_resync_of_unchanged_data_publishes_the_same_ids(connected):
    api, a = connected.api, connected.a
    conn = api.connections(a, "stripe")[0]
    before = {e.headers["id"] for e in events_of(connected.events,
                                                 "integrations.order.recorded", a,
                                                 provider="stripe")}
    r = api.call("POST", f"/api/integrations/connections/{conn['id']}/sync", a, "member",
                 body={"kind": "manual"})
    assert r.status == 202, r
    op = r.header("Location")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        o = http("GET", connected.edge.url + op, headers=a.headers())
        if o.status == 200 and o.body.get("status") == "completed":
            break
        time.sleep(0.3)
    assert o.body["result"]["status"] == 202, o
    sync = api.wait_sync(a, o.body["result"]["body"]["id"])
    assert sync["status"] == "completed" and sync["kind"] == "manual", sync
    after = read_events(connected.session)
    new = events_of(after, "integrations.order.recorded", a, provider="stripe")
    inw = [e for e in new if e.body["day"] >= day_shift(today(), -2)]
    assert inw and {e.headers["id"] for e in inw} <= before, "a re-sync made new ids"


# ---------------------------------------------------------------------------
# The callback's refusals, roles, another tenant
# ---------------------------------------------------------------------------

def test_callback_refusals_redirect_with_a_reason(ig):
    api, a = ig.api, ig.a
    cb = f"{ig.edge.url}/api/integrations/hubspot/callback"
    r = http("GET", cb + "?code=x")
    assert r.status == 302 and location_query(r)["reason"] == "missing_state", r
    r = http("GET", cb + "?code=x&state=forged.forged")
    assert r.status == 302 and location_query(r)["reason"] == "invalid_state", r
    r = api.connect(a, "hubspot", "acme", deny=True)
    q = location_query(r)
    assert q["status"] == "error" and q["reason"] == "access_denied", q
    # A state of one provider does not open another; it works once.
    c = Tenant(ig.session, "c")
    r = api.call("POST", "/api/integrations/linkedin_ads/connect", c)
    url = r.body["authorize_url"] + "&stand_in_user=carol"
    loc = http("GET", url, check_nosniff=False).header("Location")
    other = loc.replace("/linkedin_ads/callback", "/tiktok_ads/callback")
    assert location_query(http("GET", other))["reason"] == "invalid_state"
    assert location_query(http("GET", loc))["status"] == "connected"
    again = http("GET", loc)
    assert location_query(again)["reason"] == "invalid_state", again
    # Shopify: the callback's hmac is checked before the code is used.
    r = api.call("POST", "/api/integrations/shopify/connect", a, body={"shop": "acme"})
    loc = http("GET", r.body["authorize_url"], check_nosniff=False).header("Location")
    bad = loc.replace("hmac=", "hmac=00")
    q = location_query(http("GET", bad))
    assert q["status"] == "error" and q["reason"] == "bad_callback", q


def test_roles_and_tokens(ig):
    api, a = ig.api, ig.a
    r = api.call("POST", "/api/integrations/hubspot/connect", a, "viewer")
    assert r.status == 403, r
    r = api.call("POST", "/api/integrations/stripe/keys", a, "member",
                 body={"api_key": STRIPE_KEY})
    assert r.status == 403, r
    r = api.call("GET", "/api/integrations/connections")
    assert r.status == 401, r
    r = api.call("GET", "/api/integrations/connections", a, "viewer")
    assert r.status == 200, r
    # Each route's {provider} names only the providers it serves: the edge
    # refuses the others by the schema.
    r = api.call("POST", "/api/integrations/stripe/connect", a)
    assert r.status == 400, r
    r = api.call("POST", "/api/integrations/hubspot/keys", a, body={"api_key": "whatever-key"})
    assert r.status == 400, r
    r = api.call("POST", "/api/integrations/stripe/keys", a, body={"api_key": "not-a-key-at-all"})
    assert r.status == 422, r
    r = api.call("POST", "/api/integrations/shopify/connect", a, body={"shop": "evil.com/x"})
    assert r.status == 422, r


def test_another_tenant_sees_and_touches_nothing_of_ours(connected):
    api, a = connected.api, connected.a
    b = Tenant(connected.session, "b")
    theirs = api.connections(a)[0]
    assert api.connections(b) == []
    for method, path, role in [("GET", f"/api/integrations/connections/{theirs['id']}", "viewer"),
                               ("GET", f"/api/integrations/connections/{theirs['id']}/syncs", "viewer"),
                               ("POST", f"/api/integrations/connections/{theirs['id']}/sync", "member"),
                               ("DELETE", f"/api/integrations/connections/{theirs['id']}", "admin")]:
        r = api.call(method, path, b, role, body={} if method == "POST" else None)
        if r.status == 202:  # async: the answer is the operation's
            o = http("GET", connected.edge.url + r.header("Location"), headers=b.headers())
            deadline = time.monotonic() + 30
            while o.body.get("status") != "completed" and time.monotonic() < deadline:
                time.sleep(0.3)
                o = http("GET", connected.edge.url + r.header("Location"), headers=b.headers())
            assert o.body["result"]["status"] == 404, o
        else:
            assert r.status == 404, (method, path, r)
    # b connects the same provider as another stand-in user: other accounts.
    r = api.connect(b, "tiktok_ads", "bob")
    assert location_query(r)["status"] == "connected", r
    mine = {c["account_id"] for c in api.connections(b)}
    ours = {c["account_id"] for c in api.connections(a, "tiktok_ads")}
    assert mine and not mine & ours
    assert api.connections(a, "tiktok_ads")[0]["status"] == "connected"


def test_klaviyo_private_key(ig):
    e = Tenant(ig.session, "e")
    r = ig.api.call("POST", "/api/integrations/klaviyo/keys", e, body={"api_key": KLAVIYO_KEY})
    assert r.status == 201 and r.body["auth"] == "api_key", r
    ig.api.wait_synced(e, "klaviyo", 1, timeout=120)
    r = ig.api.call("POST", "/api/integrations/klaviyo/keys", e, body={"api_key": "pk_short"})
    assert r.status == 422, r


# ---------------------------------------------------------------------------
# Syncs: on demand, backfill, pacing, refresh under two syncs, re-auth
# ---------------------------------------------------------------------------

def request_sync(api, tenant, conn_id, **body):
    """POST a sync (202 with its operation); the sync record it started."""
    r = api.call("POST", f"/api/integrations/connections/{conn_id}/sync", tenant, "member",
                 body=body)
    assert r.status == 202, r
    deadline = time.monotonic() + 60
    while True:
        o = http("GET", api.url + r.header("Location"), headers=tenant.headers())
        if o.status == 200 and o.body.get("status") == "completed":
            assert o.body["result"]["status"] == 202, o
            return o.body["result"]["body"]
        assert time.monotonic() < deadline, o
        time.sleep(0.3)


def test_backfill_is_its_own_job_and_matches_the_truth(connected):
    api, a, si = connected.api, connected.a, connected.standin
    conn = api.connections(a, "google_ads")[0]
    started = request_sync(api, a, conn["id"], kind="backfill", days=10)
    assert started["kind"] == "backfill"
    assert started["since"] == day_shift(today(), -9) and started["until"] == today()
    # The incremental one may run beside it.
    manual = request_sync(api, a, conn["id"], kind="manual")
    assert manual["id"] != started["id"]
    done = api.wait_sync(a, started["id"])
    assert done["status"] == "completed" and done["streams"]["ad_metrics"] > 0, done
    assert api.wait_sync(a, manual["id"])["status"] == "completed"
    evs = events_of(read_events(connected.session), "integrations.ad_metrics.recorded", a,
                    provider="google_ads", account_id=conn["account_id"])
    rows = [b for b in latest(evs, lambda b: (b["campaign_id"], b["day"])).values()
            if b["day"] >= started["since"]]
    t = si.truth("google_ads", account=conn["account_id"], since=started["since"],
                 until=today())["values"]["total"]
    assert len(rows) == t["rows"] and sum(r["spend_minor"] for r in rows) == t["spend"]
    assert sum(r["conversion_value_minor"] for r in rows) == t["conversion_value"]
    # The incremental mark did not move for a backfill.
    assert api.call("GET", f"/api/integrations/connections/{conn['id']}", a,
                    "viewer").body["synced_until"] == today()


def test_refresh_and_rotation_under_two_concurrent_syncs(connected):
    """Shopify's refresh tokens rotate and are single use. Every access
    token is made to expire at the stand-in; two syncs of one shop then both
    find theirs refused at once: one refreshes under the connection's lock,
    the other waits and uses the new token. A second use of the rotated
    refresh token would be refused (and counted)."""
    api, a, si = connected.api, connected.a, connected.standin
    conn = api.connections(a, "shopify")[0]
    before = si.counters("shopify")
    si.fault("shopify", "expired")
    s1 = request_sync(api, a, conn["id"], kind="manual")
    s2 = request_sync(api, a, conn["id"], kind="backfill", days=2)
    assert api.wait_sync(a, s1["id"])["status"] == "completed"
    assert api.wait_sync(a, s2["id"])["status"] == "completed"
    after = si.counters("shopify")
    refreshes = after["refreshes"].get("total", 0) - before["refreshes"].get("total", 0)
    assert refreshes == 1, (before["refreshes"], after["refreshes"])
    assert after["refresh_reuse"] == before["refresh_reuse"], after["refresh_reuse"]
    assert api.call("GET", f"/api/integrations/connections/{conn['id']}", a,
                    "viewer").body["status"] == "connected"
    evs = events_of(read_events(connected.session), "integrations.connection.refreshed", a,
                    connection_id=conn["id"])
    assert len({e.headers["id"] for e in evs}) == 1, evs


def test_pacing_keeps_every_limiter_quiet(connected):
    """Backfills that, called as fast as they could go, would overrun the
    providers' limits: Shopify's calculated-cost bucket (shrunk here to 1,000
    points restored 50 a second: the connector learns it from
    throttleStatus), TikTok's 10 requests a second per token (two
    advertisers of one token at once), Stripe's reads a second. Then no
    provider counted a violation, or a call made before a Retry-After ran
    out, over the whole module's traffic."""
    api, a, si = connected.api, connected.a, connected.standin
    si.config("shopify", gql_bucket=1000, gql_restore_per_s=50)
    try:
        syncs = []
        for p, days in [("shopify", 8), ("tiktok_ads", 35), ("stripe", 14)]:
            for c in api.connections(a, p):
                syncs.append(request_sync(api, a, c["id"], kind="backfill", days=days))
        for s in syncs:
            done = api.wait_sync(a, s["id"], timeout=240)
            assert done["status"] == "completed", done
    finally:
        si.config("shopify", gql_bucket=2000, gql_restore_per_s=100)
    shopify = si.counters("shopify")
    assert sum(v for k, v in shopify["requests"].items() if "graphql" in k) >= 4, shopify
    for p in PROVIDERS:
        c = si.counters(p)
        assert c["violations"] == {}, (p, c["violations"])
        assert c["retry_after_ignored"] == {}, (p, c["retry_after_ignored"])


def test_refused_credentials_mark_needs_reauth(ig):
    api, si = ig.api, ig.standin
    d = Tenant(ig.session, "d")
    assert location_query(api.connect(d, "hubspot", "dave"))["status"] == "connected"
    conn = api.wait_synced(d, "hubspot", 1)[0]
    si.fault("hubspot", "revoked", user="dave")
    s = request_sync(api, d, conn["id"], kind="manual")
    done = api.wait_sync(d, s["id"])
    assert done["status"] == "failed" and "re-auth" in done["error"], done
    c = api.call("GET", f"/api/integrations/connections/{conn['id']}", d, "viewer").body
    assert c["status"] == "needs_reauth" and c["last_error"], c
    evs = read_events(ig.session)
    assert events_of(evs, "integrations.connection.invalidated", d, connection_id=conn["id"])
    assert events_of(evs, "integrations.sync.failed", d, connection_id=conn["id"])
    r = api.call("POST", f"/api/integrations/connections/{conn['id']}/sync", d, "member",
                 body={"kind": "manual"})
    o = http("GET", api.url + r.header("Location"), headers=d.headers())
    deadline = time.monotonic() + 30
    while o.body.get("status") != "completed" and time.monotonic() < deadline:
        time.sleep(0.3)
        o = http("GET", api.url + r.header("Location"), headers=d.headers())
    assert o.body["result"]["status"] == 409, o
    # Connecting again heals it.
    assert location_query(api.connect(d, "hubspot", "dave"))["status"] == "connected"
    assert api.call("GET", f"/api/integrations/connections/{conn['id']}", d,
                    "viewer").body["status"] == "connected"


# ---------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------

def hook_url(ig, provider):
    return f"{ig.edge.url}/api/integrations/webhooks/{provider}"


def send(ig, provider, **spec):
    r = ig.standin.webhook(provider=provider, url=hook_url(ig, provider), **spec)
    body = r.get("response")
    try:
        import json
        body = json.loads(body)
    except (TypeError, ValueError):
        pass
    return r["status"], body


def test_webhooks_publish_verified_records_for_their_tenant(connected):
    si, a = connected.standin, connected.a
    # Shopify: the REST order, normalised as the sync's GraphQL one: same id.
    status, body = send(connected, "shopify", account="acme", topic="orders/create",
                        event_id="evt-shop-1")
    assert status == 200 and body["published"] == 1, body
    newest = si.truth("shopify", account="acme", since=today(), until=today())
    evs = wait_events(connected.session, lambda evs: len(
        events_of(evs, "integrations.order.recorded", a, provider="shopify")) >
        len(events_of(connected.events, "integrations.order.recorded", a, provider="shopify")))
    shop = events_of(evs, "integrations.order.recorded", a, provider="shopify")
    by_order = collections.defaultdict(set)
    for e in shop:
        by_order[e.body["order_id"]].add(e.headers["id"])
    assert newest["values"]["orders"] >= 1
    assert all(len(ids) == 1 for ids in by_order.values()), \
        "a webhook and a sync of the same order made two ids"
    # The same event again: a duplicate, nothing published.
    status, body = send(connected, "shopify", account="acme", topic="orders/create",
                        event_id="evt-shop-1")
    assert status == 200 and body["duplicates"] == 1 and body["published"] == 0, body
    # Stripe: a charge event of our account.
    acct = connected.api.connections(a, "stripe")[0]["account_id"]
    status, body = send(connected, "stripe", account=acct, topic="charge.succeeded")
    assert status == 200 and body["published"] == 1, body
    # GoHighLevel: a whole contact, Ed25519-signed.
    loc = connected.api.connections(a, "gohighlevel")[0]["account_id"]
    status, body = send(connected, "gohighlevel", account=loc, topic="ContactCreate")
    assert status == 200 and body["published"] == 1, body
    evs = wait_events(connected.session, lambda evs: events_of(
        evs, "integrations.contact.recorded", a, provider="gohighlevel") and len(
        events_of(evs, "integrations.order.recorded", a, provider="stripe")) > len(
        events_of(connected.events, "integrations.order.recorded", a, provider="stripe")))
    # An account nobody here connected.
    status, body = send(connected, "shopify", account="nobody-here", topic="orders/create")
    assert status == 200 and body["unmatched"] == 1 and body["published"] == 0, body


def test_webhooks_that_say_something_changed_bring_a_sync_forward(connected):
    api, a = connected.api, connected.a
    for provider, account in [("hubspot", api.connections(a, "hubspot")[0]["account_id"]),
                              ("klaviyo", api.connections(a, "klaviyo")[0]["account_id"]),
                              ("meta_ads", api.connections(a, "meta_ads")[0]["account_id"])]:
        before = len(events_of(read_events(connected.session), "integrations.sync.started", a,
                               provider=provider, account_id=account))
        status, body = send(connected, provider, account=account)
        assert status == 200 and body["syncs"] == 1, (provider, body)
        wait_events(connected.session, lambda evs: len(events_of(
            evs, "integrations.sync.started", a, provider=provider,
            account_id=account)) > before)


@pytest.mark.parametrize("provider,spec", [
    ("shopify", {"account": "acme", "tamper": True}),
    ("shopify", {"account": "acme", "secret": "shpss_not-the-secret"}),
    ("stripe", {"tamper": True}),
    ("stripe", {"timestamp_offset_s": -900}),
    ("hubspot", {"tamper": True}),
    ("hubspot", {"timestamp_offset_s": -900}),
    ("klaviyo", {"secret": "another-secret"}),
    ("klaviyo", {"timestamp_offset_s": 900}),
    ("meta_ads", {"tamper": True}),
    ("gohighlevel", {"tamper": True}),
])
def test_a_bad_signature_is_refused_with_no_effect(connected, provider, spec):
    api, a = connected.api, connected.a
    if provider != "shopify":
        spec = dict(spec, account=api.connections(a, provider)[0]["account_id"])
    before = read_events(connected.session)
    status, body = send(connected, provider, **spec)
    assert status == 401, (status, body)
    assert body["status"] == 401 and body["title"], body
    time.sleep(1.5)
    after = read_events(connected.session)
    new = [e for e in after[len(before):] if e.headers.get("tenant") == a.id]
    assert not new, [e.headers["type"] for e in new]


def test_providers_without_webhooks(ig):
    # The route's {provider} names only the providers that send webhooks.
    r = ig.api.call("POST", "/api/integrations/webhooks/linkedin_ads", raw=b"{}")
    assert r.status == 400, r


# ---------------------------------------------------------------------------
# Disconnect
# ---------------------------------------------------------------------------

def test_disconnect_revokes_deletes_and_stops(connected):
    api, a, si = connected.api, connected.a, connected.standin
    conns = api.connections(a, "google_ads")
    before = si.counters("google_ads")["revocations"].get("total", 0)
    r1 = api.call("DELETE", f"/api/integrations/connections/{conns[0]['id']}", a)
    assert r1.status == 200 and r1.body["status"] == "disconnected", r1
    # One consent gave both accounts: the first goes without revoking it.
    assert r1.body["revoked"] is False
    r2 = api.call("DELETE", f"/api/integrations/connections/{conns[1]['id']}", a)
    assert r2.status == 200 and r2.body["revoked"] is True, r2
    assert si.counters("google_ads")["revocations"].get("total", 0) == before + 1
    for c in conns:
        got = api.call("GET", f"/api/integrations/connections/{c['id']}", a, "viewer").body
        assert got["status"] == "disconnected" and "next_sync_at" not in got, got
    docs = [d for d in store_docs(connected.session, "connections")
            if d["_id"] in {c["id"] for c in conns}]
    assert docs and all("creds" not in d for d in docs), docs
    evs = events_of(read_events(connected.session), "integrations.connection.disconnected", a)
    assert {e.body["connection_id"] for e in evs} >= {c["id"] for c in conns}
    r = api.call("DELETE", f"/api/integrations/connections/{conns[0]['id']}", a, "member")
    assert r.status == 403, r


# ---------------------------------------------------------------------------
# Secrets: nowhere but encrypted in the store
# ---------------------------------------------------------------------------

def _strings(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _strings(x)
    elif isinstance(v, str):
        yield v.encode()
    elif isinstance(v, (bytes, bytearray)):
        yield bytes(v)


def test_tokens_and_keys_are_nowhere_in_clear(connected):
    """Every access and refresh token the stand-in issued, the API keys
    given, the apps' secrets and the encryption key: not in the processes'
    logs, the replies, the events (bodies and headers) or, unencrypted, in
    any record of the store (the group's database and the operation log)."""
    si, ig = connected.standin, connected
    secrets = {STRIPE_KEY, TW_KEY, KLAVIYO_KEY, ig.env["OMNIFY_INTEGRATIONS_TOKEN_KEYS"][3:]}
    secrets |= {v for k, v in ig.env.items() if "SECRET" in k and v}
    for p in PROVIDERS:
        if p in ("stripe", "triplewhale"):
            continue
        secrets |= {t["value"] for t in si.tokens(p)}
    secrets = {s.encode() for s in secrets if len(s) >= 8}
    assert len(secrets) > 40, len(secrets)
    places = {"group log": [ig.group.log_text().encode()],
              "edge log": [ig.edge.log_text().encode()],
              "replies": [r.raw + (r.header("Location") or "").encode() for r in ig.api.replies]}
    evs = read_events(ig.session)
    places["events"] = [e.raw + str(e.headers).encode() for e in evs]
    st = store(ig.session)
    try:
        for db in ("integrations", "ops"):
            names = st.cmd({"listCollections": 1, "nameOnly": True,
                            "$db": ig.session.db_prefix + db})
            batch = names["cursor"]["firstBatch"]
            for c in (batch.values() if isinstance(batch, dict) else batch):
                docs = st.find_all(ig.session.db_prefix + db, c["name"])
                places[f"store {db}.{c['name']}"] = [b for d in docs for b in _strings(d)]
    finally:
        st.close()
    assert any("creds" in d for d in store_docs(ig.session, "connections"))
    found = [(where, s[:6]) for where, blobs in places.items() for blob in blobs
             for s in secrets if s in blob]
    assert not found, found
