"""Two edge replicas, each on its own reply partition, sharing one auth
process: every request is answered by the replica that took it, with its
own reply, under concurrency."""

import collections
import threading
import time
import uuid

import pytest

from conftest import LOW_ARGON2, http, stop_all, wait_ready, wait_status

N_REQUESTS = 200
N_THREADS = 16


@pytest.fixture(scope="module")
def system(module_procs):
    auth = module_procs.start_group("auth", wait=False, **LOW_ARGON2)
    edges = [module_procs.start_edge(name=f"edge{i}", reply_partition=i,
                                     OMNIFY_REPLY_TIMEOUT_MS="30000")
             for i in (0, 1)]
    wait_ready(auth, auth.url + "/ready")
    for e in edges:
        wait_status(e.url, "auth")
    return {"auth": auth, "edges": edges}


def test_each_replica_owns_its_reply_partition(system, session):
    for i, e in enumerate(system["edges"]):
        msgs = [l.get("msg", "") for l in e.log_lines()]
        want = f"replies on {session.topic_prefix}edge.replies:{i}"
        assert any(want in m for m in msgs), (want, msgs[:20])


def test_concurrent_signups_across_two_edges(system):
    edges = system["edges"]
    run = uuid.uuid4().hex[:8]
    jobs = [(i, f"rep-{run}-{i}@example.com", edges[i % 2].url) for i in range(N_REQUESTS)]
    results = {}
    lock = threading.Lock()
    it = iter(jobs)

    def worker():
        while True:
            with lock:
                job = next(it, None)
            if job is None:
                return
            i, email, url = job
            try:
                r = http("POST", url + "/api/auth/signup", timeout=60,
                         json_body={"email": email, "password": "replica-pass-1",
                                    "name": f"Replica {i}"})
            except Exception as e:  # noqa: BLE001 - reported below
                r = e
            with lock:
                results[i] = r

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    took = time.monotonic() - t0

    assert len(results) == N_REQUESTS
    bad = []
    by_status = collections.Counter()
    ids = set()
    for i, email, url in jobs:
        r = results[i]
        if isinstance(r, Exception):
            bad.append((i, url, repr(r)))
            by_status["exception"] += 1
            continue
        by_status[r.status] += 1
        if r.status != 201 or not isinstance(r.body, dict) or r.body.get("email") != email \
                or r.body.get("name") != f"Replica {i}":
            bad.append((i, url, email, r))
        else:
            ids.add(r.body["id"])
    assert not bad, f"{len(bad)} of {N_REQUESTS} wrong ({dict(by_status)}), e.g. {bad[:5]}"
    assert len(ids) == N_REQUESTS, "user ids are not unique"
    print(f"{N_REQUESTS} signups over 2 edges in {took:.1f}s")


def test_both_edges_served_requests(system):
    # Each replica counted its own half of the signups as 201.
    import re
    for e in system["edges"]:
        m = http("GET", e.url + "/metrics")
        got = re.search(r'omnify_http_requests_total\{route="auth\.signup",status="201"\} (\d+)',
                        m.body)
        assert got and int(got.group(1)) == N_REQUESTS // 2, (e.name, got and got.group(0))
        assert 'route="auth.signup",status="504"' not in m.body, e.name


def test_sigterm_all_exit_0(system):
    codes = stop_all(system["edges"] + [system["auth"]])
    assert all(c == 0 for c in codes.values()), codes
