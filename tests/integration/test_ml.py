"""ml over HTTP against the real broker and store, end to end:
integrations' events (produced here exactly as EVENTS.md describes them,
from the provider stand-ins' data sets) -> the analytics group's
projections and closed days -> the ml group's anomalies, pacing and
what-if, forecasts and scores, read over the edge as a client would.

One tenant gets 70 days of two ad accounts that share a currency (and a
third in another currency), 200 days of a shop's orders and a year of
CRM contacts and deals; on the last day one ad account spends four times
its usual. Then the accounts' connections and first syncs: analytics
closes the last day, ml refreshes on that event (a timer fired as
service:ml), finds the spike, projects the month, fits the budget curves.
The figures are checked against the stand-ins' ground truth where one
exists (spend so far this month, the spike's value), and for shape where
it is a model's answer (intervals ordered, horizons, versions named).

A second tenant has a week of data: too little history for a forecast
(422 naming it), and it never sees the first tenant's forecasts, anomalies
or scores. Bad parameters answer 400/422 naming the field or the problem.

Needs the analytics group, its event producer (build/bin/bench-events)
and its test helpers (test_analytics.py); the module skips otherwise.
"""

import datetime as dt
import os
import sys
import time
import uuid

import pytest

from conftest import BUILD_BIN, REPO, assert_problem, http, poll_operation, wait_status

# The analytics group is built on its own branch: until it is merged, this
# whole module skips (test_ml_api.py covers what needs no analytics).
if not (os.path.exists(os.path.join(BUILD_BIN, "bench-events"))
        and os.path.exists(os.path.join(REPO, "tests", "integration",
                                        "test_analytics.py"))):
    pytest.skip("the analytics group (bench-events, test_analytics.py) is "
                "not in this build", allow_module_level=True)

from mpack import mp_unpack  # noqa: E402
from test_analytics import (PROVIDER, ad_event, bearer, event, order_event,  # noqa: E402
                            produce)
from test_auth_rbac import kcat_records  # noqa: E402

sys.path.insert(0, os.path.join(REPO, "tests", "providers"))
from standin import data as standin  # noqa: E402

HISTORY_DAYS = 70
ORDER_DAYS = 200
CONTACT_DAYS = 365
SPIKE = 4


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def handled(proc, group):
    """Events a group's subscriptions handled so far (its own metrics)."""
    r = http("GET", proc.url + "/metrics", check_nosniff=False)
    n = 0
    for line in r.body.splitlines():
        if line.startswith("omnify_events_handled_total{") and f'group="{group}"' in line:
            n += int(float(line.rsplit(" ", 1)[1]))
    return n


def wait_until(what, fn, timeout=240, every=1.0):
    """fn() until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout} s (last: {last!r})")


def auth(w, tenant, role):
    """A token of the tenant's one user (operations answer their sender)."""
    return bearer(w.session, tenant, role, user=w.users.setdefault(tenant, str(uuid.uuid4())))


def api(w, method, path, tenant, role="owner", body=None, params=None):
    q = "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    return http(method, w.url + path + q, headers=auth(w, tenant, role), json_body=body,
                timeout=60)


def ml_events(session, etype, tenant):
    """Bodies of the ml.events records of one type and tenant."""
    out = []
    for rec in kcat_records(session, session.topic_prefix + "ml.events"):
        h = rec.get("headers") or []
        hd = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        if hd.get("type") == etype and hd.get("tenant") == tenant:
            out.append(mp_unpack((rec.get("payload") or "").encode("utf-8",
                                                                   "surrogateescape")))
    return out


def pick_accounts():
    """Two ad accounts of different providers in one currency (the fewest
    campaigns of each provider there), and one in another currency."""
    by_cur = {}
    for prov in ("google_ads", "meta", "tiktok", "linkedin"):
        for acct in standin.accounts_of(prov, "acme"):
            cur = standin.currency_of(prov, acct)
            best = by_cur.setdefault(cur, {})
            if prov not in best or (standin.campaign_count(prov, acct) <
                                    standin.campaign_count(prov, best[prov])):
                best[prov] = acct
    cur = next(c for c, p in by_cur.items() if len(p) >= 2)
    pair = sorted(by_cur[cur].items(), key=lambda pa: standin.campaign_count(*pa))[:2]
    other_cur = next(c for c in by_cur if c != cur)
    other = min(by_cur[other_cur].items(), key=lambda pa: standin.campaign_count(*pa))
    return cur, [(p, a) for p, a in pair], (other[0], other[1], other_cur)


def ad_events(tenant, prov, acct, cur, since, until, spike_day=None):
    events, observed = [], int(time.time() * 1000)
    for d, c in standin.ad_rows(prov, acct, since, until):
        m = dict(standin.metrics(prov, acct, c, d, final=True))
        if d == spike_day:
            for k in ("spend", "impressions", "clicks"):
                m[k] *= SPIKE
        events.append(ad_event(tenant, PROVIDER[prov], acct, cur, c, d, m, observed))
    return events


def spend_truth(prov, acct, since, until, spike_day=None):
    """The spend of an account over [since, until] as produced."""
    total = 0
    for d, c in standin.ad_rows(prov, acct, since, until):
        s = standin.metrics(prov, acct, c, d, final=True)["spend"]
        total += s * (SPIKE if d == spike_day else 1)
    return total


def iso(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def crm_events(tenant, since_ts):
    """The stand-in HubSpot account's contacts (created since since_ts) and
    their deals, as integrations records them now."""
    acct = standin.accounts_of("hubspot", "acme")[0]
    now, observed, out = standin.CLOCK.now(), int(time.time() * 1000), []
    key = f"{tenant}|hubspot|{acct}"
    for c in standin.visible_contacts("hubspot", acct):
        if c["created_ts"] < since_ts:
            continue
        v = standin.contact_view(c, now)
        eng = v["engagement"]
        body = {"provider": "hubspot", "account_id": acct, "contact_id": c["id"],
                "created_at": iso(c["created_ts"]), "updated_at": iso(v["updated_ts"]),
                "lifecycle_stage": v["stage"], "email_domain": c["email"].split("@")[1],
                "engagement": {"emails_opened": eng["Opened Email"],
                               "emails_clicked": eng["Clicked Email"],
                               "page_views": eng["Viewed Product"]},
                "observed_ms": observed}
        if v["last_engagement_ts"]:
            body["engagement"]["last_engaged_at"] = iso(v["last_engagement_ts"])
        out.append(event("integrations.contact.recorded", tenant, body, key=key))
        if v["deal"]:
            stage = v["deal"]["stage"]
            deal = {"provider": "hubspot", "account_id": acct, "deal_id": c["deal"]["id"],
                    "contact_id": c["id"], "stage": stage,
                    "amount_minor": c["deal"]["amount"],
                    "currency": standin.currency_of("hubspot", acct),
                    "created_at": iso(c["deal"]["created_ts"]), "observed_ms": observed}
            if stage in ("closedwon", "closedlost"):
                deal["won"] = stage == "closedwon"
                deal["closed_at"] = iso(v["deal"]["stage_ts"])
            out.append(event("integrations.deal.recorded", tenant, deal, key=key))
    return out


def connections(tenant, accounts):
    """Each account connected and synced now: analytics closes yesterday."""
    out, now = [], int(time.time() * 1000)
    for prov, acct in accounts:
        # UUIDs, as schemas/integrations.json declares them.
        cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{prov}/{acct}"))
        sid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{prov}/{acct}/sync"))
        out.append(event("integrations.connection.connected", tenant,
                         {"connection_id": cid, "provider": prov, "account_id": acct,
                          "account_name": acct}, created_at=now))
        out.append(event("integrations.sync.completed", tenant,
                         {"sync_id": sid, "connection_id": cid, "provider": prov,
                          "account_id": acct, "kind": "backfill", "records": 1,
                          "streams": {}, "first_sync": True}, created_at=now))
    return out


# ---------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(session, module_procs):
    w = type("World", (), {})()
    w.session, w.users = session, {}
    # A sync completed now covers yesterday (no lag for whole days).
    w.analytics = module_procs.start_group("analytics", OMNIFY_ANALYTICS_CLOSE_LAG_H="0")
    w.ml = module_procs.start_group("ml")
    w.edge = module_procs.start_edge()
    w.url = w.edge.url
    wait_status(w.url, "analytics")
    wait_status(w.url, "ml")
    w.tenant, w.small = str(uuid.uuid4()), str(uuid.uuid4())
    w.until = standin.CLOCK.today() - dt.timedelta(days=1)
    w.since = w.until - dt.timedelta(days=HISTORY_DAYS - 1)
    w.cur, w.pair, w.other = pick_accounts()
    (pa, aa), (pb, ab) = w.pair
    w.spiked = PROVIDER[pa]
    events = ad_events(w.tenant, pa, aa, w.cur, w.since, w.until, spike_day=w.until)
    events += ad_events(w.tenant, pb, ab, w.cur, w.since, w.until)
    events += ad_events(w.tenant, w.other[0], w.other[1], w.other[2], w.since, w.until)
    shop_lo = standin.day_start(w.until - dt.timedelta(days=ORDER_DAYS))
    shop_hi = standin.day_start(w.until) + 86400
    observed = int(time.time() * 1000)
    for o in standin.visible_orders("shopify", "acme"):
        if shop_lo <= o["created_ts"] < shop_hi:
            events.append(order_event(w.tenant, "acme", o, observed))
    events += crm_events(w.tenant, standin.day_start(w.until - dt.timedelta(days=CONTACT_DAYS)))
    # The small tenant: one account, its last week.
    events += ad_events(w.small, pb, ab, w.cur, w.until - dt.timedelta(days=6), w.until)
    w.n_ml = sum(1 for e in events if e["type"] in (
        "integrations.contact.recorded", "integrations.deal.recorded",
        "integrations.order.recorded"))
    a0, m0 = handled(w.analytics, "analytics"), handled(w.ml, "ml")
    produce(session, events)
    wait_until("analytics projected the events",
               lambda: handled(w.analytics, "analytics") >= a0 + len(events), timeout=600)
    wait_until("ml folded its features",
               lambda: handled(w.ml, "ml") >= m0 + w.n_ml, timeout=600)
    # Every figure of the last day is in analytics' answers before its
    # connections say the day is complete.
    want = {PROVIDER[pa]: spend_truth(pa, aa, w.until, w.until, spike_day=w.until),
            PROVIDER[pb]: spend_truth(pb, ab, w.until, w.until)}
    wait_until("analytics answers the last day in full",
               lambda: last_day_spend(w, w.tenant) == want, timeout=120)
    accounts = [(PROVIDER[pa], aa), (PROVIDER[pb], ab),
                (PROVIDER[w.other[0]], w.other[1]), ("shopify", "acme"),
                ("hubspot", standin.accounts_of("hubspot", "acme")[0])]
    produce(session, connections(w.tenant, accounts) +
            connections(w.small, [(PROVIDER[pb], ab)]))
    return w


def last_day_spend(w, tenant):
    """analytics' spend by provider on the last day, in the pair's currency."""
    r = api(w, "GET", "/api/analytics/metrics", tenant, role="viewer",
            params={"metric": "spend", "group_by": "provider", "currency": w.cur,
                    "from": w.until.isoformat(), "to": w.until.isoformat()})
    return {x["provider"]: x["spend"] for x in r.body["rows"]} if r.status == 200 else None


def anomalies(w, tenant, **params):
    r = api(w, "GET", "/api/ml/anomalies", tenant, role="viewer", params=params)
    assert r.status == 200, r
    return r.body["anomalies"]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_a_closed_day_finds_the_spike(world):
    w = world
    day = w.until.isoformat()
    found = wait_until("the spike among the anomalies", lambda: [
        a for a in anomalies(w, w.tenant, **{"from": day, "to": day, "metric": "spend"})
        if a.get("provider") == w.spiked and a.get("currency") == w.cur and
        a["kind"] == "spike"])
    a = found[0]
    (pa, aa), _ = w.pair
    assert len(found) == 1 and a["day"] == day and a["direction"] == "up", found
    assert a["value"] == spend_truth(pa, aa, w.until, w.until, spike_day=w.until), a
    assert a["lower"] < a["expected"] < a["upper"] < a["value"], a
    assert a["score"] >= 3.5, a
    assert a["model_version"] == "anomaly/robust-seasonal/v1", a
    # Published once, with the same figures.
    evs = wait_until("ml.anomaly.detected on ml.events", lambda: [
        e for e in ml_events(w.session, "ml.anomaly.detected", w.tenant)
        if e["anomaly_id"] == a["anomaly_id"]], timeout=60)
    assert len(evs) == 1, evs
    assert evs[0]["value"] == a["value"] and evs[0]["provider"] == w.spiked
    # The small tenant sees none of it.
    assert not anomalies(w, w.small, **{"from": day, "to": day})


def test_pacing_against_the_stand_ins_truth(world):
    w = world
    wait_until("pacing", lambda: api(w, "GET", "/api/ml/budget/pacing", w.tenant,
                                     role="viewer", params={"currency": w.cur}).status == 200)
    r = api(w, "GET", "/api/ml/budget/pacing", w.tenant, role="viewer")
    body = assert_problem(r, 422)
    assert "several currencies" in body["detail"] and w.cur in body["detail"], body
    r = api(w, "GET", "/api/ml/budget/pacing", w.tenant, role="viewer",
            params={"currency": w.cur})
    assert r.status == 200, r
    p = r.body
    month_start = (w.until + dt.timedelta(days=1)).replace(day=1)
    assert p["month"] == month_start.strftime("%Y-%m") and p["through"] == w.until.isoformat()
    assert p["model_version"].startswith(f"pacing/{w.cur}/v"), p
    got = {c["provider"]: c for c in p["channels"]}
    assert set(got) == {PROVIDER[prov] for prov, _ in w.pair}, got.keys()
    for prov, acct in w.pair:
        s = got[PROVIDER[prov]]["spend"]
        spike = w.until if PROVIDER[prov] == w.spiked else None
        truth = (spend_truth(prov, acct, month_start, w.until, spike_day=spike)
                 if month_start <= w.until else 0)
        assert s["actual"] == truth, (prov, s, truth)
        assert s["projected"] == pytest.approx(s["actual"] + s["forecast"])
        assert s["lo95"] <= s["lo80"] <= s["projected"] <= s["hi80"] <= s["hi95"], s
        assert s["model"].startswith("ETS("), s


def test_what_if_is_a_labelled_model(world):
    w = world
    (pa, _), (pb, _) = w.pair
    body = {"from": PROVIDER[pb], "to": PROVIDER[pa], "amount_minor": 100, "days": 30,
            "currency": w.cur}
    r = wait_until("response curves", lambda: (lambda x: x if x.status != 404 else None)(
        api(w, "POST", "/api/ml/budget/what-if", w.tenant, role="viewer", body=body)))
    assert r.status == 200, r
    assert "a model, not a measurement" in r.body["model"]
    assert r.body["model_version"].startswith(f"response/{w.cur}/v"), r.body
    chans = {c["provider"]: c for c in r.body["channels"]}
    assert chans[PROVIDER[pb]]["daily_spend_after"] == pytest.approx(
        chans[PROVIDER[pb]]["daily_spend_before"] - 100)
    assert r.body["revenue_change"] == pytest.approx(
        sum(c["revenue_change"] for c in r.body["channels"]))
    for c in r.body["channels"]:
        assert "holdout_mape" in c["error"], c
    assert any("independently" in a for a in r.body["assumptions"])
    r = api(w, "POST", "/api/ml/budget/what-if", w.tenant, role="viewer",
            body=dict(body, amount_minor=10 ** 12))
    assert "current daily spend" in assert_problem(r, 422)["detail"]
    r = api(w, "POST", "/api/ml/budget/what-if", w.tenant, role="viewer",
            body=dict(body, to="snapchat_ads"))
    assert "snapchat_ads" in assert_problem(r, 422)["detail"]


def test_forecast_accepted_then_ready(world):
    w = world
    r = api(w, "POST", "/api/ml/forecasts", w.tenant, role="member",
            body={"metric": "spend", "provider": w.spiked, "currency": w.cur, "horizon": 14})
    assert r.status == 202 and r.body["status"] == "pending", r
    fid = r.body["forecast_id"]
    assert r.body["location"] == f"/api/ml/forecasts/{fid}", r

    def ready():
        x = api(w, "GET", f"/api/ml/forecasts/{fid}", w.tenant, role="viewer")
        assert x.status == 200, x
        return x if x.body["status"] == "ready" else None
    f = wait_until("the forecast", ready).body
    assert f["metric"] == "spend" and f["provider"] == w.spiked and f["horizon"] == 14
    assert f["currency"] == w.cur, f
    assert f["model"].startswith("ETS(") and f["fit"]["models_compared"] >= 1, f
    assert f["model_version"] == f"forecast/{fid}/v{f['version']}", f
    assert f["history"]["to"] == w.until.isoformat(), f["history"]
    assert f["history"]["days"] == HISTORY_DAYS, f["history"]
    days = [p["day"] for p in f["points"]]
    assert days == [(w.until + dt.timedelta(days=i + 1)).isoformat() for i in range(14)]
    for p in f["points"]:
        assert 0 <= p["lo95"] <= p["lo80"] <= p["mean"] <= p["hi80"] <= p["hi95"], p
    evs = wait_until("ml.forecast.completed", lambda: [
        e for e in ml_events(w.session, "ml.forecast.completed", w.tenant)
        if e["forecast_id"] == fid], timeout=60)
    assert evs[0]["model_version"].startswith(f"forecast/{fid}/v"), evs
    # Listed; not another tenant's to read; deleted.
    r = api(w, "GET", "/api/ml/forecasts", w.tenant, role="viewer")
    assert fid in [x["forecast_id"] for x in r.body["forecasts"]]
    assert api(w, "GET", f"/api/ml/forecasts/{fid}", w.small, role="owner").status == 404
    assert api(w, "DELETE", f"/api/ml/forecasts/{fid}", w.small, role="owner").status == 404


def test_too_little_history_is_named(world):
    w = world
    r = api(w, "POST", "/api/ml/forecasts", w.small, role="member",
            body={"metric": "clicks", "horizon": 7})
    assert r.status == 202, r
    fid = r.body["forecast_id"]
    r = wait_until("the forecast's verdict", lambda: (lambda x: x if x.status != 200 else None)(
        api(w, "GET", f"/api/ml/forecasts/{fid}", w.small, role="viewer")))
    body = assert_problem(r, 422)
    assert "too little history: 7 days" in body["detail"] and "clicks" in body["detail"], body


def test_bad_parameters_are_named(world):
    w = world
    t = w.tenant
    r = api(w, "POST", "/api/ml/forecasts", t, role="member", body={"metric": "profit"})
    assert_problem(r, 400, {"metric"})
    r = api(w, "POST", "/api/ml/forecasts", t, role="member",
            body={"metric": "spend", "horizon": 0})
    assert_problem(r, 400, {"horizon"})
    r = api(w, "POST", "/api/ml/forecasts", t, role="member",
            body={"metric": "spend", "horizon": 366})
    assert_problem(r, 400, {"horizon"})
    r = api(w, "POST", "/api/ml/forecasts", t, role="member",
            body={"metric": "spend", "campaign_id": "123"})
    assert "campaign_id needs provider" in assert_problem(r, 422)["detail"]
    r = api(w, "POST", "/api/ml/forecasts", t, role="viewer", body={"metric": "spend"})
    assert_problem(r, 403)
    r = api(w, "GET", "/api/ml/anomalies", t, role="viewer", params={"from": "2026-02-30"})
    assert_problem(r, 400, {"from"})
    r = api(w, "GET", "/api/ml/anomalies", t, role="viewer",
            params={"from": "2026-03-02", "to": "2026-03-01"})
    assert "from is after to" in assert_problem(r, 422)["detail"]
    r = api(w, "POST", "/api/ml/models/fraud/train", t, role="member")
    assert_problem(r, 400, {"kind"})
    r = api(w, "GET", "/api/ml/scores/lead", w.small, role="viewer")
    assert "no lead model yet" in assert_problem(r, 404)["detail"]


def test_lead_and_churn_models_trained_and_scored(world):
    w = world
    for kind in ("lead", "churn"):
        # Training takes a while: asked asynchronously, answered by the
        # operation.
        h = dict(auth(w, w.tenant, "member"), Prefer="respond-async")
        r = http("POST", f"{w.url}/api/ml/models/{kind}/train", headers=h, timeout=60)
        assert r.status == 202, r
        op = r.header("Location").rsplit("/", 1)[1]
        r = poll_operation(w.url, op, headers=auth(w, w.tenant, "member"), timeout=180)
        assert r.body["status"] == "completed" and r.body["result"]["status"] == 200, r
        m = r.body["result"]["body"]
        assert m["kind"] == kind and m["model_version"].startswith(f"{kind}/v"), m
        v = m["validation"]
        assert 0 <= v["auc"] <= 1 and 0 <= v["brier"] <= 1, v
        assert sum(b["count"] for b in v["calibration"]) == m["n_valid"], v
        assert m["n_train"] + m["n_valid"] == m["rows"] and m["positives"] > 0, m
        assert len(m["features"]) >= 5, m
        evs = wait_until("ml.model.trained", lambda: [
            e for e in ml_events(w.session, "ml.model.trained", w.tenant)
            if e["model_version"] == m["model_version"]], timeout=60)
        assert evs[0]["auc"] == pytest.approx(v["auc"])
        r = api(w, "GET", f"/api/ml/scores/{kind}", w.tenant, role="viewer",
                params={"limit": 20})
        assert r.status == 200, r
        scores = r.body["scores"]
        assert scores and r.body["model_version"] == m["model_version"]
        assert [s["score"] for s in scores] == sorted((s["score"] for s in scores),
                                                      reverse=True)
        assert [s["rank"] for s in scores] == list(range(1, len(scores) + 1))
        assert all(s["model_version"] == m["model_version"] for s in scores)
        one = api(w, "GET", f"/api/ml/scores/{kind}/{scores[0]['id']}", w.tenant,
                  role="viewer")
        assert one.status == 200 and one.body["scores"][0]["score"] == scores[0]["score"]
        assert api(w, "GET", f"/api/ml/scores/{kind}/{scores[0]['id']}", w.small,
                   role="viewer").status == 404
        r = api(w, "GET", f"/api/ml/models/{kind}", w.tenant, role="viewer")
        assert r.body["versions"][0]["model_version"] == m["model_version"], r
    # Too small: the small tenant has no contacts.
    r = api(w, "POST", "/api/ml/models/lead/train", w.small, role="member")
    assert "too few examples to train a lead model: 0 contacts" in \
        assert_problem(r, 422)["detail"]
    # On a schedule, and off again.
    r = api(w, "PUT", "/api/ml/models/churn/schedule", w.tenant, role="member",
            body={"every_days": 7})
    assert r.status == 200 and r.body == {"kind": "churn", "every_days": 7}, r
    r = api(w, "PUT", "/api/ml/models/churn/schedule", w.tenant, role="member",
            body={"every_days": 0})
    assert r.status == 200, r
