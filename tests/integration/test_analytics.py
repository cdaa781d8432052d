"""Analytics over HTTP against the real broker and store: the numbers of the
dashboard, the metrics route (JSON and CSV), attribution, reports and
insights' inputs, checked against figures computed here independently.

Integrations' events are produced here exactly as EVENTS.md describes them
(envelope headers, msgpack bodies: build/bin/bench-events produce), from
the data sets of the provider stand-ins (tests/providers/standin/data.py):
each ad row is published twice, the final figures first and the early ones
(55 % of the conversions) after, so only last-writer-wins by observed_ms
gives the right answer; the expected figures come from the stand-ins'
ground truth (truth_ads, truth_orders), not from our own code.
"""

import csv
import datetime as dt
import io
import json
import math
import os
import subprocess
import sys
import time
import uuid

import pytest

from conftest import (BUILD_BIN, REPO, assert_problem, default_claims, http, make_jwt,
                      poll_operation, wait_status)

sys.path.insert(0, os.path.join(REPO, "tests", "providers"))
from standin import data as standin  # noqa: E402
from standin.client import MailServer  # noqa: E402

# The stand-ins name some ad platforms shorter than integrations' events do.
PROVIDER = {"google_ads": "google_ads", "meta": "meta_ads", "tiktok": "tiktok_ads",
            "linkedin": "linkedin_ads"}
EVENTS_BIN = os.path.join(BUILD_BIN, "bench-events")


# ---------------------------------------------------------------------------
# Helpers (test_analytics_replay.py uses them too)
# ---------------------------------------------------------------------------

def produce(session, events, verbose=False):
    """Publish events ({topic, type, tenant, key, id, created_at, body}) as
    the publishing group would; with verbose, {id: (partition, offset)}."""
    lines = "".join(json.dumps(e) + "\n" for e in events)
    r = subprocess.run([EVENTS_BIN, "produce"] + (["-v"] if verbose else []),
                       input=lines, env=session.env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"produced={len(events)}" in r.stdout, r.stdout
    if not verbose:
        return None
    placed = {}
    for line in r.stdout.splitlines():
        if line.startswith("at "):
            _, eid, part, off = line.split()
            placed[eid] = (int(part), int(off))
    return placed


def event(etype, tenant, body, key=None, created_at=None, eid=None):
    e = {"topic": "integrations.events", "type": etype, "tenant": tenant,
         "key": key or tenant, "body": body, "id": eid or str(uuid.uuid4())}
    if created_at is not None:
        e["created_at"] = created_at
    return e


def handled(group):
    """Events the group's subscription handled so far (ok and failed)."""
    r = http("GET", group.url + "/metrics", check_nosniff=False)
    n = 0
    for line in r.body.splitlines():
        if line.startswith("omnify_events_handled_total{") and 'group="analytics"' in line:
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def wait_handled(group, at_least, timeout=240):
    deadline = time.monotonic() + timeout
    n = handled(group)
    while n < at_least and time.monotonic() < deadline:
        time.sleep(0.5)
        n = handled(group)
    assert n >= at_least, f"the analytics group handled {n} of {at_least} events"


def bearer(session, tenant, role="owner", user=None):
    claims = default_claims(sub=user or str(uuid.uuid4()), tid=tenant, roles=(role,))
    return {"Authorization": "Bearer " + make_jwt(session.jwt_secret, claims)}


def get(base, path, session, tenant, role="owner", params=None, headers=None):
    q = ""
    if params:
        q = "?" + "&".join(f"{k}={v}" for k, v in params.items())
    h = bearer(session, tenant, role)
    h.update(headers or {})
    return http("GET", base + path + q, headers=h, timeout=60)


def ad_event(tenant, provider, account, currency, campaign, day, m, observed):
    return event("integrations.ad_metrics.recorded", tenant, {
        "provider": provider, "account_id": account, "campaign_id": campaign["id"],
        "campaign_name": campaign["name"], "day": day.isoformat(), "currency": currency,
        "spend_minor": m["spend"], "impressions": m["impressions"], "clicks": m["clicks"],
        "conversions": m["conversions"], "conversion_value_minor": m["conversion_value"],
        "video_views": m["video_views"], "observed_ms": observed},
        key=f"{tenant}|{provider}|{account}")


def order_event(tenant, shop, o, observed):
    a = o["attribution"]
    placed = dt.datetime.fromtimestamp(o["created_ts"], dt.timezone.utc)
    touch = []
    if a["utm_source"]:
        tp = {"at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"), "source": a["utm_source"],
              "medium": a["utm_medium"] or "", "campaign": a["utm_campaign"] or ""}
        if a["ad_provider"]:
            tp["provider"] = PROVIDER[a["ad_provider"]]
            tp["campaign_id"] = a["campaign_id"]
        touch.append(tp)
    refunded = sum(r["amount"] for r in standin.visible_refunds(o))
    return event("integrations.order.recorded", tenant, {
        "provider": "shopify", "account_id": shop, "order_id": str(o["id"]),
        "placed_at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"), "day": placed.date().isoformat(),
        "currency": o["currency"], "total_minor": o["total"], "subtotal_minor": o["subtotal"],
        "refunded_minor": refunded, "customer_id": str(o["customer"]["id"]),
        "new_customer": not o["returning"], "status": standin.financial_status(o),
        "line_items": [{"sku": li["sku"], "name": li["title"], "quantity": li["quantity"],
                        "price_minor": li["price"]} for li in o["line_items"]],
        "touchpoints": touch, "observed_ms": observed}, key=f"{tenant}|shopify|{shop}")


def pick_accounts(user="acme"):
    """Two ad accounts of the stand-in user, in two currencies."""
    found = []
    for prov in ("google_ads", "meta", "tiktok", "linkedin"):
        for acct in standin.accounts_of(prov, user):
            found.append((prov, acct, standin.currency_of(prov, acct)))
    first = found[0]
    other = next((f for f in found if f[2] != first[2]), None)
    assert other, "the stand-in user's ad accounts are all in one currency"
    return [first, other]


def near(a, b, rel=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


# ---------------------------------------------------------------------------
# The world: an edge and the analytics group, and one tenant's data
# ---------------------------------------------------------------------------

def start_world(session, procs, env=None):
    """The analytics group and an edge, both answering."""
    w = type("World", (), {})()
    w.session = session
    w.group = procs.start_group("analytics", env=env)
    w.edge = procs.start_edge()
    w.url = w.edge.url
    wait_status(w.url, "analytics")
    return w


@pytest.fixture(scope="module")
def mail():
    m = MailServer().start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def world(session, module_procs, mail):
    w = start_world(session, module_procs,
                    env={"OMNIFY_MAIL_BASE_URL": mail.url, "OMNIFY_MAIL_API_KEY": mail.api_key})
    w.mail = mail
    w.tenant = str(uuid.uuid4())
    today = standin.CLOCK.today()
    # Two periods of 7 days, final (late conversions are over after 4 days).
    w.until = today - dt.timedelta(days=5)
    w.since = w.until - dt.timedelta(days=6)
    w.prev_until = w.since - dt.timedelta(days=1)
    w.prev_since = w.prev_until - dt.timedelta(days=6)
    w.accounts = pick_accounts()
    events, w.orders = [], []
    base = int(time.time() * 1000)
    for prov, acct, cur in w.accounts:
        for d, c in standin.ad_rows(prov, acct, w.prev_since, w.until):
            final = standin.metrics(prov, acct, c, d, final=True)
            early = dict(final, conversions=int(final["conversions"] * 0.55),
                         conversion_value=final["conversion_value"] * 55 // 100)
            # The final figures first, the older ones after.
            events.append(ad_event(w.tenant, PROVIDER[prov], acct, cur, c, d, final, base + 10))
            events.append(ad_event(w.tenant, PROVIDER[prov], acct, cur, c, d, early, base))
    lo = standin.day_start(w.prev_since)
    hi = standin.day_start(w.until) + 86400
    for o in standin.visible_orders("shopify", "acme"):
        if lo <= o["created_ts"] < hi:
            w.orders.append(o)
            events.append(order_event(w.tenant, "acme", o, base))
    w.n_events = len(events)
    before = handled(w.group)
    produce(session, events)
    wait_handled(w.group, before + len(events))
    return w


def truth_by_currency(w, since, until):
    out = {}
    for prov, acct, cur in w.accounts:
        t = standin.truth_ads(prov, acct, since, until, final=True)["values"].get("total")
        if not t:
            continue
        acc = out.setdefault(cur, dict.fromkeys(
            ("spend", "impressions", "clicks", "conversions", "conversion_value"), 0))
        for k in acc:
            acc[k] += t[k]
    return out


def order_truth(w, since, until):
    t = standin.truth_orders("shopify", "acme", since, until)
    return t["currency"], t["values"]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_dashboard_kpis_match_the_stand_ins_ground_truth(world):
    w = world
    r = get(w.url, "/api/analytics/dashboard", w.session, w.tenant,
            params={"from": w.since.isoformat(), "to": w.until.isoformat()})
    assert r.status == 200, r
    assert r.body["compare"] == {"kind": "previous_period", "from": w.prev_since.isoformat(),
                                 "to": w.prev_until.isoformat()}
    ads, prev_ads = truth_by_currency(w, w.since, w.until), truth_by_currency(
        w, w.prev_since, w.prev_until)
    ocur, orders = order_truth(w, w.since, w.until)
    _, prev_orders = order_truth(w, w.prev_since, w.prev_until)
    got = {c["currency"]: c for c in r.body["currencies"]}
    assert set(got) == set(ads) | {ocur}, got.keys()
    assert len(ads) == 2, "two currencies of ad spend"
    for cur, a in ads.items():
        k = got[cur]["kpis"]
        o = orders if cur == ocur else dict.fromkeys(("net", "gross", "refunded", "orders",
                                                      "new_customers"), 0)
        assert k["spend"]["value"] == a["spend"]
        assert k["spend"]["previous"] == prev_ads[cur]["spend"]
        assert k["spend"]["delta"] == a["spend"] - prev_ads[cur]["spend"]
        assert near(k["spend"]["delta_pct"],
                    (a["spend"] - prev_ads[cur]["spend"]) / prev_ads[cur]["spend"] * 100)
        assert k["conversions"]["value"] == a["conversions"]
        assert k["conversion_value"]["value"] == a["conversion_value"]
        assert near(k["roas"]["value"], a["conversion_value"] / a["spend"])
        assert near(k["cpa"]["value"], a["spend"] / a["conversions"])
        assert near(k["ctr"]["value"], a["clicks"] / a["impressions"])
        assert near(k["cpc"]["value"], a["spend"] / a["clicks"])
        assert near(k["cpm"]["value"], a["spend"] * 1000 / a["impressions"])
        assert near(k["cvr"]["value"], a["conversions"] / a["clicks"])
        assert k["revenue"]["value"] == o["net"]
        if cur == ocur:
            assert k["gross_revenue"]["value"] == o["gross"]
            assert k["refunds"]["value"] == o["refunded"]
            assert k["orders"]["value"] == o["orders"]
            assert k["new_customers"]["value"] == o["new_customers"]
            assert k["revenue"]["previous"] == prev_orders["net"]
            assert near(k["mer"]["value"], o["net"] / a["spend"])
            assert near(k["blended_roas"]["value"], o["net"] / a["spend"])
            assert near(k["tw_mer"]["value"], a["spend"] / o["net"])
            assert near(k["aov"]["value"], o["net"] / o["orders"])
            assert near(k["cac"]["value"], a["spend"] / o["new_customers"])
        else:
            # No revenue in this currency: MER 0, TripleWhale's undefined.
            assert k["mer"]["value"] == 0 and k["tw_mer"]["value"] is None
    # Totals across currencies: counts only.
    t = r.body["totals"]
    assert t["impressions"]["value"] == sum(a["impressions"] for a in ads.values())
    assert t["clicks"]["value"] == sum(a["clicks"] for a in ads.values())
    assert t["orders"]["value"] == orders["orders"]
    assert "spend" not in t, "money is never summed across currencies"
    # The series covers the period day by day in each currency.
    for cur in ads:
        days = [s["day"] for s in got[cur]["series"]]
        assert days == sorted(days) and days[0] >= w.since.isoformat()
        assert sum(s["spend"] for s in got[cur]["series"]) == ads[cur]["spend"]
    assert "ad spend / revenue" in r.body["definitions"]["tw_mer"]


def test_metrics_by_provider_as_json_and_csv(world):
    w = world
    params = {"metric": "spend,clicks,roas", "group_by": "provider",
              "from": w.since.isoformat(), "to": w.until.isoformat()}
    r = get(w.url, "/api/analytics/metrics", w.session, w.tenant, role="viewer",
            params=params)
    assert r.status == 200, r
    rows = {(x["currency"], x["provider"]): x for x in r.body["rows"]}
    for prov, acct, cur in w.accounts:
        t = standin.truth_ads(prov, acct, w.since, w.until, final=True)["values"]["total"]
        row = rows[(cur, PROVIDER[prov])]
        assert row["spend"] == t["spend"] and row["clicks"] == t["clicks"]
        assert near(row["roas"], t["conversion_value"] / t["spend"])
    c = get(w.url, "/api/analytics/metrics", w.session, w.tenant, role="viewer",
            params=params, headers={"Accept": "text/csv"})
    assert c.status == 200, c
    assert c.content_type.startswith("text/csv"), c
    table = list(csv.DictReader(io.StringIO(c.raw.decode())))
    assert [x["provider"] for x in table] == [x["provider"] for x in r.body["rows"]]
    assert [int(x["spend"]) for x in table] == [x["spend"] for x in r.body["rows"]]


def test_bad_metric_and_dimension_names_are_named(world):
    w = world
    r = get(w.url, "/api/analytics/metrics", w.session, w.tenant,
            params={"metric": "spend,profit"})
    assert_problem(r, 400, {"metric[1]"})
    r = get(w.url, "/api/analytics/metrics", w.session, w.tenant,
            params={"metric": "spend", "group_by": "galaxy"})
    assert_problem(r, 400, {"group_by[0]"})
    r = get(w.url, "/api/analytics/metrics", w.session, w.tenant,
            params={"metric": "mer", "group_by": "campaign"})
    # Valid by the schema, refused by a rule across fields: 422 (declared).
    body = assert_problem(r, 422, {"group_by[0]"})
    assert "mer cannot be grouped by campaign" in body["errors"][0]["reason"]
    for path, params, field in [
            ("metrics", {"metric": "aov", "campaign_id": "c1"}, "campaign_id"),
            ("attribution", {"from": "2025-03-02", "to": "2025-03-01"}, "from"),
            ("dashboard", {"from": "1990-01-01", "to": "2025-03-01"}, "from")]:
        r = get(w.url, "/api/analytics/" + path, w.session, w.tenant,
                params=params)
        assert_problem(r, 422, {field})
    r = get(w.url, "/api/analytics/dashboard", w.session, w.tenant,
            params={"from": "2025-02-30"})
    assert_problem(r, 400, {"from"})


def test_last_click_attribution_of_the_stand_in_orders(world):
    w = world
    r = get(w.url, "/api/analytics/attribution", w.session, w.tenant,
            params={"model": "last_click", "from": w.since.isoformat(),
                    "to": w.until.isoformat()})
    assert r.status == 200, r
    expect = {}
    lo, hi = standin.day_start(w.since), standin.day_start(w.until) + 86400
    for o in w.orders:
        if not lo <= o["created_ts"] < hi:
            continue
        a = o["attribution"]
        net = o["total"] - sum(x["amount"] for x in standin.visible_refunds(o))
        channel = (PROVIDER[a["ad_provider"]] if a["ad_provider"] else
                   f"{a['utm_source']}/{a['utm_medium'] or '(none)'}" if a["utm_source"]
                   else "(none)")
        expect[channel] = expect.get(channel, 0) + net
    cur = r.body["currencies"][0]
    assert {x["channel"]: x["revenue_minor"] for x in cur["rows"]} == expect
    assert cur["revenue_minor"] == sum(expect.values())


def test_attribution_models_on_hand_made_journeys(world):
    """Three orders with hand-made journeys; every model's credits
    computed here (whole minor units by largest remainder)."""
    w = world
    tenant = str(uuid.uuid4())
    day = "2025-06-20"
    journeys = [
        (1001, ["google_ads", "klaviyo", "meta_ads"], [10, 3, 0]),
        (2500, ["meta_ads"], [1]),
        (777, ["google_ads", "google_ads", "tiktok_ads", "klaviyo"], [20, 8, 2, 0.5]),
    ]
    events = []
    for n, (total, chans, ages) in enumerate(journeys):
        placed = dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)
        tps = []
        for ch, age in zip(chans, ages):
            at = (placed - dt.timedelta(days=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if ch == "klaviyo":
                tps.append({"at": at, "source": "klaviyo", "medium": "email", "campaign": "news"})
            else:
                tps.append({"at": at, "source": ch, "medium": "cpc", "campaign": f"{ch}-1",
                            "provider": ch, "campaign_id": f"{ch}-1"})
        events.append(event("integrations.order.recorded", tenant, {
            "provider": "shopify", "account_id": "s", "order_id": f"j{n}",
            "placed_at": placed.strftime("%Y-%m-%dT%H:%M:%SZ"), "day": day, "currency": "USD",
            "total_minor": total, "subtotal_minor": total, "refunded_minor": 0,
            "customer_id": f"c{n}", "new_customer": True, "status": "paid", "line_items": [],
            "touchpoints": tps, "observed_ms": 1}, key=f"{tenant}|shopify|s"))
    before = handled(w.group)
    produce(w.session, events)
    wait_handled(w.group, before + len(events))

    def weights(model, ages):
        n = len(ages)
        if model == "last_click":
            return [0] * (n - 1) + [1]
        if model == "first_click":
            return [1] + [0] * (n - 1)
        if model == "linear":
            return [1 / n] * n
        if model == "time_decay":
            ws = [2 ** (-age / 7) for age in ages]
            return [x / sum(ws) for x in ws]
        if n == 1:
            return [1]
        if n == 2:
            return [0.5, 0.5]
        return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]

    def split(total, ws):
        got = [math.floor(total * x) for x in ws]
        rem = [total * x - g for x, g in zip(ws, got)]
        for _ in range(total - sum(got)):
            best = 0
            for i in range(1, len(ws)):
                if rem[i] > rem[best] + 1e-12:
                    best = i
            got[best] += 1
            rem[best] = -1
        return got

    for model in ("last_click", "first_click", "linear", "time_decay", "position_based"):
        expect_rev, expect_orders = {}, {}
        for total, chans, ages in journeys:
            ws = weights(model, ages)
            for ch, x, part in zip(chans, ws, split(total, ws)):
                if x == 0:
                    continue
                name = "klaviyo/email" if ch == "klaviyo" else ch
                expect_rev[name] = expect_rev.get(name, 0) + part
                expect_orders[name] = expect_orders.get(name, 0) + x
        r = get(w.url, "/api/analytics/attribution", w.session, tenant,
                params={"model": model, "from": day, "to": day})
        assert r.status == 200, r
        rows = r.body["currencies"][0]["rows"]
        assert {x["channel"]: x["revenue_minor"] for x in rows} == expect_rev, model
        for x in rows:
            assert near(x["orders"], expect_orders[x["channel"]]), (model, x)
        assert sum(x["revenue_minor"] for x in rows) == 1001 + 2500 + 777


def test_tenants_never_see_each_other(world):
    w = world
    other = str(uuid.uuid4())
    r = get(w.url, "/api/analytics/dashboard", w.session, other,
            params={"from": w.since.isoformat(), "to": w.until.isoformat()})
    assert r.status == 200, r
    assert r.body["currencies"] == []
    r = get(w.url, "/api/analytics/metrics", w.session, other,
            params={"metric": "spend,revenue", "from": w.prev_since.isoformat(),
                    "to": w.until.isoformat()})
    assert r.status == 200 and r.body["rows"] == [], r
    # A report of one tenant is not found by another.
    rep = http("POST", w.url + "/api/analytics/reports", headers=bearer(w.session, w.tenant),
               json_body={"name": "mine", "metrics": ["spend"],
                          "period": {"preset": "last_30_days"}})
    assert rep.status == 201, rep
    r = get(w.url, f"/api/analytics/reports/{rep.body['report_id']}", w.session, other)
    assert_problem(r, 404)
    # A viewer may not set budgets (admin) nor save reports (member).
    r = http("PUT", w.url + "/api/analytics/budgets", headers=bearer(w.session, w.tenant, "viewer"),
             json_body={"currency": "USD", "monthly_minor": 100})
    assert_problem(r, 403)
    r = http("POST", w.url + "/api/analytics/reports",
             headers=bearer(w.session, w.tenant, "viewer"),
             json_body={"name": "x", "metrics": ["spend"], "period": {"preset": "last_7_days"}})
    assert_problem(r, 403)
    r = http("GET", w.url + "/api/analytics/dashboard")
    assert_problem(r, 401)


def test_report_runs_async_and_answers_csv(world):
    w = world
    h = bearer(w.session, w.tenant, "member")
    rep = http("POST", w.url + "/api/analytics/reports", headers=h, json_body={
        "name": "Weekly spend", "metrics": ["spend", "clicks"], "group_by": ["day"],
        "period": {"preset": "custom", "from": w.since.isoformat(), "to": w.until.isoformat()},
        "filters": {"account_id": [w.accounts[0][1]]}})
    assert rep.status == 201, rep
    rid = rep.body["report_id"]
    run = http("POST", w.url + f"/api/analytics/reports/{rid}/runs", headers=h)
    assert run.status == 202, run
    op = poll_operation(w.url, run.header("Location").rsplit("/", 1)[1], headers=h)
    assert op.body["status"] == "completed", op
    assert op.body["result"]["status"] == 201, op
    result = op.body["result"]["body"]
    assert result["rows"] == 7, op
    rows = get(w.url, result["result"], w.session, w.tenant, role="viewer")
    assert rows.status == 200, rows
    prov, acct, cur = w.accounts[0]
    truth = standin.truth_ads(prov, acct, w.since, w.until, final=True, by="day")["values"]
    assert {x["day"]: x["spend"] for x in rows.body["rows"]} == \
        {d: v["spend"] for d, v in truth.items()}
    c = get(w.url, result["result"], w.session, w.tenant, role="viewer",
            headers={"Accept": "text/csv"})
    assert c.status == 200 and c.content_type.startswith("text/csv"), c
    table = list(csv.DictReader(io.StringIO(c.raw.decode())))
    assert len(table) == 7 and set(table[0]) == {"currency", "day", "spend", "clicks"}


def test_scheduled_report_fires_and_mails_csv(world):
    """A report with a schedule; its timer's command (sent here as the
    timer service sends it, with the creator's tenant and roles) runs it and
    mails the rows as CSV through the SendGrid stand-in."""
    w = world
    to = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    rep = http("POST", w.url + "/api/analytics/reports",
               headers=bearer(w.session, w.tenant, "member"),
               json_body={"name": "Daily spend", "metrics": ["spend"], "group_by": ["provider"],
                          "period": {"preset": "custom", "from": w.since.isoformat(),
                                     "to": w.until.isoformat()},
                          "schedule": {"every": "daily", "hour_utc": 7, "recipients": [to]}})
    assert rep.status == 201, rep
    fire = {"topic": "analytics.commands", "type": "analytics.reports.fire",
            "tenant": w.tenant, "user": str(uuid.uuid4()), "roles": "member",
            "body": {"report_id": rep.body["report_id"]}}
    produce(w.session, [fire])
    got = w.mail.wait_mail(to, timeout=60)[0]
    assert "Daily spend" in got["subject"] and "currency,provider,spend" in got["text"], got
    for prov, acct, cur in w.accounts:
        t = standin.truth_ads(prov, acct, w.since, w.until, final=True)["values"]["total"]
        assert f"{cur},{PROVIDER[prov]},{t['spend']}" in got["text"], got["text"]
