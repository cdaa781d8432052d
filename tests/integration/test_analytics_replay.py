"""Replaying analytics' projections from the log (omnify replay), against the
real broker and store, with the analytics group and an edge serving
meanwhile:

- a replay from the earliest offsets gives digests identical to the live
  projection (and to a second replay);
- a replay killed with SIGKILL swaps nothing, leaves the live version
  serving, and the same command resumes it to the same digests;
- a replay of one tenant changes only that tenant: another tenant's version
  and documents stay byte-identical (same digests); --rate bounds it; its
  progress is at /api/analytics/replays/{id} for its own tenant only;
- replays publish nothing (no day closed, no insight);
- while a replay swaps, concurrent dashboard reads see the old version or
  the new one, never a half-built one or a mix: the log loses some records
  first (as retention would), so the new version differs from the old, and
  the figures of both are computed here from the events.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import pytest

from conftest import bin_path
from test_analytics import (EVENTS_BIN, event, get, handled, produce, start_world,
                            wait_handled)

DAYS = ["2025-03-%02d" % d for d in range(1, 11)]


def ad(tenant, account, campaign, day, spend, observed, provider="google_ads",
       currency="USD"):
    return event("integrations.ad_metrics.recorded", tenant, {
        "provider": provider, "account_id": account, "campaign_id": campaign,
        "campaign_name": campaign.upper(), "day": day, "currency": currency,
        "spend_minor": spend, "impressions": spend * 10, "clicks": spend // 10,
        "conversions": spend // 100, "conversion_value_minor": spend * 3,
        "observed_ms": observed}, key=f"{tenant}|{provider}|{account}")


def tenant_events(tenant, seed):
    """Two accounts x 20 campaigns x 10 days, each fact in two versions
    (the newer first)."""
    out = []
    for a, (account, provider, cur) in enumerate([("a1", "google_ads", "USD"),
                                                  ("a2", "meta_ads", "EUR")]):
        for c in range(20):
            for d in DAYS:
                spend = 1000 + (hash((seed, a, c, d)) % 9000)
                out.append(ad(tenant, account, f"c{c}", d, spend, 2000, provider, cur))
                out.append(ad(tenant, account, f"c{c}", d, spend // 2, 1000, provider, cur))
    return out


def replay(session, *args, timeout=600):
    return session.run([bin_path("omnify"), "replay", *args], timeout=timeout,
                       OMNIFY_LOG_LEVEL="warn")


def digests(session, *args):
    """omnify replay verify: {(projection, collection): line}."""
    r = replay(session, "verify", "analytics", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            out[(d["projection"], d["collection"])] = d
    assert out, r.stdout
    return out


def projections(world, tenant):
    r = get(world.url, "/api/analytics/projections", world.session, tenant, role="admin")
    assert r.status == 200, r
    return {p["name"]: p for p in r.body["projections"]}


def events_on(session, types=("analytics.day.closed", "analytics.insight.raised")):
    """How many records of these types <prefix>analytics.events holds
    (dashboard views publish too, and the tests read dashboards)."""
    r = subprocess.run(["kcat", "-b", os.environ.get("OMNIFY_KAFKA_BROKERS", "127.0.0.1:9092"),
                        "-C", "-t", session.topic_prefix + "analytics.events", "-e", "-q",
                        "-f", "%h\n"], capture_output=True, text=True, timeout=60)
    return len([x for x in r.stdout.splitlines()
                if any(f"type={t}" in x for t in types)])


def spend_of(world, tenant):
    """The dashboard's spend per currency over DAYS, and the series."""
    r = get(world.url, "/api/analytics/dashboard", world.session, tenant,
            params={"from": DAYS[0], "to": DAYS[-1], "compare": "none"})
    assert r.status == 200, r
    return {c["currency"]: (c["kpis"]["spend"]["value"],
                            tuple(s["spend"] for s in c["series"]))
            for c in r.body["currencies"]}


@pytest.fixture(scope="module")
def world(session, module_procs):
    w = start_world(session, module_procs)
    w.a, w.b = str(uuid.uuid4()), str(uuid.uuid4())
    events = tenant_events(w.a, 1) + tenant_events(w.b, 2)
    # A day that closes, so the live group publishes something a replay
    # must not publish again. Connection and sync ids are UUIDs and the
    # sync names its account, as schemas/integrations.json declares.
    conn = str(uuid.uuid4())
    events.append(event("integrations.connection.connected", w.a,
                        {"connection_id": conn, "provider": "google_ads",
                         "account_id": "a1", "account_name": "A1"}))
    events.append(event("integrations.sync.completed", w.a,
                        {"sync_id": str(uuid.uuid4()), "connection_id": conn,
                         "provider": "google_ads", "account_id": "a1",
                         "kind": "scheduled", "records": 1, "streams": {},
                         "first_sync": True}))
    before = handled(w.group)
    produce(session, events)
    wait_handled(w.group, before + len(events))
    w.n_events = len(events)
    return w


def test_replay_from_earliest_equals_the_live_projection(world):
    d = digests(world.session)
    for key, line in d.items():
        assert line["equal"], (key, line)
        assert line["active_equal"], (key, line)
    # At least this module's account-days (other modules of the session
    # share the log).
    assert d[("ads", "ad_days")]["documents"] >= 2 * 2 * len(DAYS)


def test_kill_9_mid_replay_swaps_nothing_and_resumes(world):
    w = world
    before = projections(w, w.a)
    baseline = spend_of(w, w.a)
    published = events_on(w.session)
    assert published >= 1, "the live group announced no closed day"
    # Slow enough to be caught mid-way.
    rate = max(200, w.n_events // 8)
    p = subprocess.Popen([bin_path("omnify"), "replay", "analytics", "--rate", str(rate),
                          "--grace", "0"], env=w.session.env(OMNIFY_LOG_LEVEL="warn"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    replay_id, seen = None, 0.0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        m = re.match(r"(\S+) building: .*\(([\d.]+)%\)", line)
        if m:
            replay_id, seen = m.group(1), float(m.group(2))
            if seen >= 25:
                break
    assert replay_id and 25 <= seen < 100, (replay_id, seen)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    # Nothing swapped: the same versions serve, the build is pending.
    after = projections(w, w.a)
    for name, proj in before.items():
        assert after[name]["version"] == proj["version"], name
        assert after[name]["building"] == replay_id, name
    assert spend_of(w, w.a) == baseline
    # Another replay with other options is refused while it is pending.
    r = replay(w.session, "analytics", "--tenant", w.b)
    assert r.returncode == 3, r.stdout + r.stderr
    assert replay_id in r.stderr
    # The same command resumes it and swaps, once the killed one is known
    # dead (its record silent for 10 s).
    deadline = time.monotonic() + 60
    while True:
        r = replay(w.session, "analytics", "--rate", str(rate), "--grace", "0")
        if r.returncode != 3 or time.monotonic() > deadline:
            break
        assert "is building" in r.stderr, r.stderr
        time.sleep(2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"replay {replay_id} (resumed)" in r.stdout, r.stdout
    after = projections(w, w.a)
    for name, proj in before.items():
        assert after[name]["version"] != proj["version"], name
        assert after[name]["building"] == "", name
    assert spend_of(w, w.a) == baseline
    for key, line in digests(w.session).items():
        assert line["equal"] and line["active_equal"], (key, line)
    # A replay publishes nothing: no day closed, no insight again.
    assert events_on(w.session) == published


def test_tenant_replay_leaves_other_tenants_byte_identical(world):
    w = world
    b_before = digests(w.session, "--tenant", w.b)
    b_versions = projections(w, w.b)
    a_before = projections(w, w.a)
    a_spend = spend_of(w, w.a)
    rate = 4000
    t0 = time.monotonic()
    r = replay(w.session, "analytics", "--tenant", w.a, "--rate", str(rate), "--grace", "0")
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    replay_id = re.search(r"replay (\S+):", r.stdout).group(1)
    # --rate: every event of the log was read at most `rate` a second.
    total = int(re.search(r": ([\d,]+) events in", r.stdout).group(1).replace(",", ""))
    assert total >= w.n_events
    assert elapsed >= 0.9 * total / rate, (elapsed, total)
    # A has versions of its own now, B kept the shared ones, and B's
    # documents are the same bytes.
    a_after, b_after = projections(w, w.a), projections(w, w.b)
    for name in a_before:
        assert a_after[name]["own_version"] and a_after[name]["version"] != \
            a_before[name]["version"], name
        assert b_after[name]["version"] == b_versions[name]["version"], name
    b_after_digests = digests(w.session, "--tenant", w.b)
    for key, line in b_before.items():
        assert b_after_digests[key]["active"] == line["active"], key
        assert b_after_digests[key]["active_documents"] == line["active_documents"], key
    assert spend_of(w, w.a) == a_spend
    # Progress for its own tenant's admins only.
    p = get(w.url, f"/api/analytics/replays/{replay_id}", w.session, w.a, role="admin")
    assert p.status == 200, p
    assert p.body["status"] == "done" and p.body["done"] == p.body["total"], p
    assert p.body["tenant"] == w.a
    p = get(w.url, f"/api/analytics/replays/{replay_id}", w.session, w.b, role="admin")
    assert p.status == 404, p
    p = get(w.url, f"/api/analytics/replays/{replay_id}", w.session, w.a, role="member")
    assert p.status == 403, p


def test_swap_under_concurrent_reads_shows_old_or_new_never_a_mix(world):
    """The log loses the first records of one partition; a replay then
    builds a version without them. Readers during the swap must see exactly
    the old figures or exactly the new ones."""
    w = world
    s = str(uuid.uuid4())
    evs = []
    for a, (account, provider) in enumerate([("s1", "google_ads"), ("s2", "tiktok_ads")]):
        for c in range(10):
            for d in DAYS:
                evs.append(ad(s, account, f"c{c}", d, 100 + a * 1000 + c * 10 + int(d[-2:]), 5,
                              provider))
    before = handled(w.group)
    placed = produce(w.session, evs, verbose=True)
    wait_handled(w.group, before + len(evs))
    old = spend_of(w, s)
    # Delete s1's records up to the middle of its events (and whatever
    # else precedes them on that partition).
    s1 = sorted((placed[e["id"]], e) for e in evs if e["body"]["account_id"] == "s1")
    part, cut = s1[len(s1) // 2][0]
    r = subprocess.run([EVENTS_BIN, "delete", "-p", str(part), "-o", str(cut)],
                       env=w.session.env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kept = [e for e in evs if not (placed[e["id"]][0] == part and placed[e["id"]][1] < cut)]
    assert 0 < len(kept) < len(evs)
    series = {}
    for e in kept:
        series[e["body"]["day"]] = series.get(e["body"]["day"], 0) + e["body"]["spend_minor"]
    new = {"USD": (sum(series.values()), tuple(series[d] for d in sorted(series)))}
    assert new != old

    seen, stop, errors = [], threading.Event(), []

    def reader():
        while not stop.is_set():
            try:
                seen.append(spend_of(w, s))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        r = replay(w.session, "analytics", "--grace", "3")
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not errors, errors
    assert seen, "the readers read nothing"
    bad = [x for x in seen if x not in (old, new)]
    assert not bad, f"{len(bad)} of {len(seen)} answers were neither version: {bad[:2]}"
    assert seen[0] == old and seen[-1] == new
    assert spend_of(w, s) == new
