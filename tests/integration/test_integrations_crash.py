"""A kill -9 of the integrations process in the middle of a sync loses no
record and publishes none twice under two ids.

A backfill of Google Ads data runs page by page (each page one command that
publishes its records and sends the next page's command, with the cursor).
The process is killed without warning once a few pages are done, started
again (the same static instance id: it takes its partitions back at once),
and the sync finishes by itself. Then the topic is read whole: every
(campaign, day) of the ground truth is there, no fact has two different
ids (a page handled again publishes the same ids: "resent", which followers
drop), and the figures add up to the truth."""

import collections
import os
import signal
import time

import pytest

from conftest import HOST, free_port, http, wait_status
from test_integrations_kit import (Api, Standin, Tenant, day_shift, events_of,
                                   location_query, read_events, settings, today)

DAYS = 112  # 16 pages of 7 days


@pytest.fixture(scope="module")
def crash(module_procs, session):
    class NS:
        pass
    ns = NS()
    ns.session = session
    ns.procs = module_procs
    ns.standin = Standin(module_procs)
    port = free_port()
    ns.env = settings(ns.standin, f"http://{HOST}:{port}",
                      OMNIFY_INSTANCE_ID="ig-crash-" + session.tag)
    ns.edge = module_procs.start_edge(port=port)
    ns.group = module_procs.start_group("integrations", env=ns.env)
    wait_status(ns.edge.url, "integrations")
    ns.api = Api(ns.edge.url)
    ns.a = Tenant(session, "crash")
    return ns


def test_kill_9_mid_sync_loses_nothing_and_duplicates_nothing(crash):
    api, a, si = crash.api, crash.a, crash.standin
    assert location_query(api.connect(a, "google_ads", "acme"))["status"] == "connected"
    conn = api.wait_synced(a, "google_ads", 2)[0]
    searches = lambda: sum(v for k, v in si.counters("google_ads")["requests"].items()
                           if "googleAds:search" in k)
    before = searches()
    r = api.call("POST", f"/api/integrations/connections/{conn['id']}/sync", a, "member",
                 body={"kind": "backfill", "days": DAYS})
    assert r.status == 202, r
    deadline = time.monotonic() + 60
    while True:
        o = http("GET", crash.edge.url + r.header("Location"), headers=a.headers())
        if o.body.get("status") == "completed":
            break
        assert time.monotonic() < deadline, o
        time.sleep(0.2)
    sync_id = o.body["result"]["body"]["id"]
    # Kill once a few pages are done and many are left.
    deadline = time.monotonic() + 120
    while True:
        s = api.call("GET", f"/api/integrations/syncs/{sync_id}", a, "viewer").body
        if s["pages"] >= 3:
            break
        assert s["status"] == "running" and time.monotonic() < deadline, s
        time.sleep(0.05)
    os.kill(crash.group.pid, signal.SIGKILL)
    crash.group.popen.wait(timeout=10)
    killed_at = s["pages"]
    assert killed_at < DAYS // 7, "the sync ended before the kill: nothing tested"
    crash.group = crash.procs.start_group("integrations", env=crash.env)
    done = api.wait_sync(a, sync_id, timeout=240)
    assert done["status"] == "completed", done

    since = day_shift(today(), -(DAYS - 1))
    evs = events_of(read_events(crash.session), "integrations.ad_metrics.recorded", a,
                    provider="google_ads", account_id=conn["account_id"])
    ids = collections.defaultdict(set)       # (campaign, day) -> ids
    values = collections.defaultdict(set)    # (campaign, day) -> value sets
    copies = collections.Counter()           # id -> times on the topic
    latest = {}
    for e in evs:
        b = e.body
        k = (b["campaign_id"], b["day"])
        ids[k].add(e.headers["id"])
        values[k].add(tuple(sorted((f, v) for f, v in b.items() if f != "observed_ms")))
        copies[e.headers["id"]] += 1
        if k not in latest or b["observed_ms"] >= latest[k]["observed_ms"]:
            latest[k] = b
    twice = {k: v for k, v in ids.items() if len(v) != len(values[k])}
    assert not twice, f"facts published under two ids: {list(twice.items())[:3]}"
    t = si.truth("google_ads", account=conn["account_id"], since=since, until=today(),
                 by="day")["values"]
    rows = [b for k, b in latest.items() if b["day"] >= since]
    assert len(rows) == sum(d["rows"] for d in t.values()), "records lost"
    per_day = collections.defaultdict(lambda: [0, 0])
    for b in rows:
        per_day[b["day"]][0] += b["spend_minor"]
        per_day[b["day"]][1] += b["impressions"]
    assert {d: tuple(v) for d, v in per_day.items()} == \
        {d: (v["spend"], v["impressions"]) for d, v in t.items()}
    resent = sum(n - 1 for n in copies.values() if n > 1)
    # Pages read again after the restart are the few the kill interrupted,
    # not the rest of the sync (no second chain of pages).
    pages = DAYS // 7
    assert searches() - before <= pages + 3, (searches() - before, pages)
    assert resent < len(rows) // 2, resent
    print(f"\nkilled after {killed_at} pages; {len(rows)} records, {resent} resent "
          f"(same id again), 0 lost, 0 under two ids")
    completed = events_of(read_events(crash.session), "integrations.sync.completed", a,
                          sync_id=sync_id)
    assert len({e.headers["id"] for e in completed}) == 1, completed


def test_rekey_moves_credentials_to_a_new_key(crash):
    """Key rotation: a new key first in OMNIFY_INTEGRATIONS_TOKEN_KEYS,
    `omnify integrations rekey`, then the old key dropped: the group still
    reads every connection's credentials."""
    from conftest import bin_path
    from test_integrations_kit import TOKEN_KEY, store_docs
    import base64
    api, a = crash.api, crash.a
    r = api.call("POST", "/api/integrations/stripe/keys", a,
                 body={"api_key": "sk_test_rekeytest0123456789"})
    assert r.status == 201, r
    api.wait_synced(a, "stripe", 1)
    new = "k2:" + base64.b64encode(b"the-next-key-0123456789abcdefghi").decode()
    keys = f"{new},k1:{TOKEN_KEY}"
    dry = crash.session.run([bin_path("omnify"), "integrations", "rekey", "--dry-run"],
                            OMNIFY_INTEGRATIONS_TOKEN_KEYS=keys)
    assert dry.returncode == 0 and "would re-encrypt" in dry.stdout, dry
    assert all(d["creds"]["kid"] == "k1" for d in store_docs(crash.session, "connections")
               if "creds" in d)
    out = crash.session.run([bin_path("omnify"), "integrations", "rekey"],
                            OMNIFY_INTEGRATIONS_TOKEN_KEYS=keys)
    assert out.returncode == 0, out
    n = int(out.stdout.split()[1])
    conns = [d for d in store_docs(crash.session, "connections") if "creds" in d]
    states = [d for d in store_docs(crash.session, "oauth_states") if "verifier" in d]
    assert n == len(conns) + len(states), out.stdout
    assert all(d["creds"]["kid"] == "k2" for d in conns)
    assert all(d["verifier"]["kid"] == "k2" for d in states)
    again = crash.session.run([bin_path("omnify"), "integrations", "rekey"],
                              OMNIFY_INTEGRATIONS_TOKEN_KEYS=keys)
    assert "re-encrypted 0 record(s)" in again.stdout, again.stdout
    # Only the new key now: the group reads what rekey wrote.
    crash.group.stop()
    env = dict(crash.env, OMNIFY_INTEGRATIONS_TOKEN_KEYS=new)
    crash.group = crash.procs.start_group("integrations", env=env)
    conn = api.connections(a, "stripe")[0]
    r = api.call("POST", f"/api/integrations/connections/{conn['id']}/sync", a, "member",
                 body={"kind": "manual"})
    assert r.status == 202, r
    deadline = time.monotonic() + 60
    while True:
        o = http("GET", crash.edge.url + r.header("Location"), headers=a.headers())
        if o.body.get("status") == "completed":
            break
        assert time.monotonic() < deadline, o
        time.sleep(0.3)
    done = api.wait_sync(a, o.body["result"]["body"]["id"])
    assert done["status"] == "completed", done
    # Without the key a record was sealed with, rekey says so.
    lost = crash.session.run([bin_path("omnify"), "integrations", "rekey"],
                             OMNIFY_INTEGRATIONS_TOKEN_KEYS="k3:" +
                             base64.b64encode(b"x" * 32).decode())
    assert lost.returncode == 3 and "not configured" in lost.stderr, lost
