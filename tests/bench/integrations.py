#!/usr/bin/env python3
"""Records synced per second from the provider stand-ins with N connections,
and the integrations process's RSS while it syncs.

    python3 tests/bench/integrations.py [--users 1,2,4] [--days 56] [--rounds 1]

Each stand-in user reaches two Google Ads customers: N users connect 2N
connections (OAuth, as a browser), whose first syncs finish; then every
connection backfills DAYS days at once (a page a 7-day chunk, ~150 campaigns
a day). Measured from the requests to the last sync's end: records
published per second (each one an event acknowledged by the broker, with
its sync's pages, cursors and progress in the store). The baseline,
measured in the same run on the same (warm) data: a plain client reading
the same pages from the stand-in as fast as the same pacing allows,
publishing nothing. The ratio says what the whole pipeline keeps of the
provider's own pace. RSS: the group process's VmRSS idle, and its highest
while syncing (sampled every 100 ms).

Prints a markdown table, and key=value lines (for tests/bench/run) on stderr
when --kv is given. Uses its own topic and database prefixes (topics deleted
afterwards); needs the build and compose/local/infra."""

import argparse
import json
import os
import secrets
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.append(os.path.join(REPO, "tests", "providers"))

import conftest  # noqa: E402
from conftest import ProcessGroup, Session, wait_status  # noqa: E402
from test_integrations_kit import Api, Standin, Tenant, settings  # noqa: E402


def vmrss(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, vmrss(self.pid))
            time.sleep(0.1)


def chunks(since_days, days):
    """The 7-day chunks of the window [today - days + 1, today]."""
    today = time.time() // 86400
    start = today - days + 1
    out = []
    while start <= today:
        end = min(start + 6, today)
        out.append((time.strftime("%Y-%m-%d", time.gmtime(start * 86400)),
                    time.strftime("%Y-%m-%d", time.gmtime(end * 86400))))
        start = end + 1
    return out


def baseline(standin, users, days):
    """A plain client: the same GAQL pages, paced as the connector paces
    them (4/s, burst 5, per customer); rows read per second."""
    from standin.client import http_call
    base = standin.base("google_ads")
    rows, lock = [0], threading.Lock()

    def one(user, customer):
        tok = standin.admin("POST", "/tokens/google-ads", {"user": user})["access_token"]
        hdr = {"Authorization": "Bearer " + tok, "developer-token": "standin-developer-token"}
        next_at = time.monotonic()
        n = 0
        for a, b in chunks(0, days):
            q = ("SELECT campaign.id, campaign.name, campaign.advertising_channel_type, "
                 "segments.date, metrics.cost_micros, metrics.impressions, metrics.clicks, "
                 "metrics.conversions, metrics.conversions_value, metrics.video_views "
                 f"FROM campaign WHERE segments.date BETWEEN '{a}' AND '{b}' "
                 "ORDER BY segments.date")
            token = None
            while True:
                wait = next_at - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                next_at = max(next_at, time.monotonic()) + 0.25
                body = {"query": q}
                if token:
                    body["pageToken"] = token
                s, _h, raw = http_call("POST", f"{base}/v18/customers/{customer}/googleAds:search",
                                       body=body, headers=hdr)
                assert s == 200, (s, raw[:200])
                ans = json.loads(raw)
                n += len(ans.get("results", []))
                token = ans.get("nextPageToken")
                if not token:
                    break
        with lock:
            rows[0] += n

    threads = [threading.Thread(target=one, args=(u, a["id"]))
               for u in users for a in standin.accounts("google_ads", u)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rows[0], time.monotonic() - t0


def pipeline(api, tenant, standin, days):
    conns = api.connections(tenant, "google_ads")
    t0 = time.monotonic()
    ops = []
    for c in conns:
        r = api.call("POST", f"/api/integrations/connections/{c['id']}/sync", tenant, "member",
                     body={"kind": "backfill", "days": days})
        assert r.status == 202, r
        ops.append(r.header("Location"))
    ids = []
    for op in ops:
        while True:
            o = conftest.http("GET", api.url + op, headers=tenant.headers())
            if o.body.get("status") == "completed":
                ids.append(o.body["result"]["body"]["id"])
                break
            time.sleep(0.1)
    records = 0
    for sid in ids:
        done = api.wait_sync(tenant, sid, timeout=900)
        assert done["status"] == "completed", done
        records += done["records"]
    return records, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", default="1,2,4")
    ap.add_argument("--days", type=int, default=56)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--kv", action="store_true")
    args = ap.parse_args()
    conftest.BIN = os.environ.get("OMNIFY_BIN_DIR", os.path.join(REPO, "build", "bin"))
    session = Session()
    session.topic_prefix = f"bnig{session.tag}."
    session.db_prefix = f"bnig{session.tag}_"
    r = session.run([conftest.bin_path("omnify"), "topics", "apply"], timeout=120)
    assert r.returncode == 0, r.stderr
    conftest.wait_topics_visible(session)
    procs = ProcessGroup(session, "bench")
    rows = []
    try:
        standin = Standin(procs)
        port = conftest.free_port()
        env = settings(standin, f"http://127.0.0.1:{port}",
                       OMNIFY_INTEGRATIONS_SYNC_INTERVAL_S="86400",
                       OMNIFY_LOG_LEVEL="warn")
        edge = procs.start_edge(port=port)
        group = procs.start_group("integrations", env=env)
        wait_status(edge.url, "integrations")
        api = Api(edge.url)
        time.sleep(2)
        idle = vmrss(group.pid)
        for n in [int(x) for x in args.users.split(",")]:
            for rnd in range(args.rounds):
                tenant = Tenant(session, f"bench{n}")
                users = [f"bench{n}r{rnd}u{i}-{secrets.token_hex(2)}" for i in range(n)]
                for u in users:  # warm the stand-in's data sets for both sides
                    for a in standin.accounts("google_ads", u):
                        standin.truth("google_ads", account=a["id"], since="2024-12-01")
                b_rows, b_secs = baseline(standin, users, args.days)
                for u in users:
                    api.connect(tenant, "google_ads", u)
                api.wait_synced(tenant, "google_ads", 2 * n, timeout=600)
                sampler = Sampler(group.pid)
                sampler.start()
                p_rows, p_secs = pipeline(api, tenant, standin, args.days)
                sampler.stop.set()
                sampler.join()
                rows.append((2 * n, p_rows, p_secs, b_rows, b_secs, sampler.peak))
        viol = standin.counters("google_ads")["violations"]
    finally:
        procs.cleanup()
        session.run([conftest.bin_path("omnify"), "topics", "delete", session.topic_prefix],
                    timeout=120)
    print("| connections | records | synced/s (pipeline) | read/s (plain client, same pages and pacing) "
          "| ratio | group RSS peak while syncing |")
    print("| --- | --- | --- | --- | --- | --- |")
    for conns, pr, ps, br, bs, peak in rows:
        print(f"| {conns} | {pr} | {pr / ps:,.0f} | {br / bs:,.0f} | {pr / ps / (br / bs):.2f} "
              f"| {peak / 1024:.1f} MiB |")
    print(f"\nGroup RSS idle: {idle / 1024:.1f} MiB; {args.days}-day backfills; stand-in "
          f"violations: {viol or 0}")
    if args.kv:
        for conns, pr, ps, br, bs, peak in rows:
            print(f"ig_sync conns={conns} records={pr} rate={pr / ps:.0f} base={br / bs:.0f} "
                  f"ratio={pr / ps / (br / bs):.3f} rss_peak_kib={peak} rss_idle_kib={idle}",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
