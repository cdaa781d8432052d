"""Replaying onboarding's checklist projection from the log (omnify replay
onboarding), against the real broker and store, with a monolith serving
meanwhile:

- a client's steps complete live from real events of auth (the signup's
  own auth.user.registered), integrations and analytics;
- `omnify replay verify onboarding` builds the projection twice from the
  earliest offsets: both builds and the live version have equal digests;
- a replay killed with SIGKILL mid-build swaps nothing (same version, same
  checklist); the same command resumes it and swaps in a new version whose
  checklist is the same (every step, its done_at, the progress);
- after the swap the live subscription writes into the new version: a new
  event still completes a step.
"""

import json
import os
import re
import signal
import subprocess
import time
import uuid

from conftest import bin_path, http
from infra_helpers import auth, produce_event, until
from test_analytics import produce
from test_onboarding import CLIENT, mono, owner, terms_and_team  # noqa: F401 (mono: a fixture)

NOISE = 1500  # events of other workspaces, so a slowed replay can be caught


def replay(session, *args, timeout=120):
    return session.run([bin_path("omnify"), "replay", *args], timeout=timeout,
                       OMNIFY_LOG_LEVEL="warn")


def verify(session):
    r = replay(session, "verify", "onboarding")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert {d["collection"] for d in lines} == {"facts", "workspaces"}, r.stdout
    return {d["collection"]: d for d in lines}


def settled(session):
    """verify's lines when both builds are equal (always) and the live
    version equals them too; else None."""
    d = verify(session)
    for coll, line in d.items():
        assert line["equal"], (coll, line)
    return d if all(line["active_equal"] for line in d.values()) else None


def active_version(session):
    r = replay(session, "status", "onboarding")
    assert r.returncode == 0, r.stdout + r.stderr
    pointer = json.loads(r.stdout.splitlines()[0])  # then the replays' records
    return pointer["p"]["checklist"]["active"]


def checklist(mono, tok, cid):
    r = http("GET", f"{mono.url}/api/onboarding/clients/{cid}", headers=auth(tok))
    assert r.status == 200, r
    return r.body


def test_replay_rebuilds_the_same_checklist(mono, session):
    tok, tenant, user = owner(mono.url)
    r = http("POST", mono.url + "/api/onboarding/clients", json_body=CLIENT, headers=auth(tok))
    assert r.status == 201, r
    cid = r.body["id"]
    until(lambda: checklist(mono, tok, cid)["steps"][0]["status"] == "done",
          timeout=30, what="workspace step done (auth.user.registered)")
    terms_and_team(session, tenant, user)
    conn_id = str(uuid.uuid4())
    produce_event(session, "integrations", "integrations.connection.connected",
                  {"connection_id": conn_id, "provider": "google_ads", "account_id": "a1",
                   "account_name": "Acme Ads"}, tenant)
    produce_event(session, "integrations", "integrations.sync.completed",
                  {"sync_id": str(uuid.uuid4()), "connection_id": conn_id,
                   "provider": "google_ads", "account_id": "a1", "kind": "scheduled",
                   "records": 10, "streams": {"campaigns": 10}, "first_sync": True}, tenant)
    # Other workspaces' first dashboard views, on the partition of this
    # tenant's, before it: once its step is done, all of them are folded.
    noise = [{"topic": "analytics.events", "type": "analytics.dashboard.viewed",
              "tenant": str(uuid.uuid4()), "key": tenant, "id": str(uuid.uuid4()),
              "body": {"user_id": str(uuid.uuid4()), "first": True}} for _ in range(NOISE)]
    noise.append({"topic": "analytics.events", "type": "analytics.dashboard.viewed",
                  "tenant": tenant, "key": tenant, "id": str(uuid.uuid4()),
                  "body": {"user_id": user, "first": True}})
    produce(session, noise)
    live = until(lambda: (lambda b: b if b["progress"]["percent"] == 6 * 100 // 7 else None)(
        checklist(mono, tok, cid)), timeout=60, what="six of seven steps done live")
    assert live["progress"]["next"] == "report_scheduled"

    # Two builds from the earliest offsets and the live version: equal
    # (other modules of the session share the log: the live group may
    # still be folding their events for a moment).
    d = until(lambda: settled(session), timeout=30, every=2,
              what="the live version equal to the rebuilt ones")
    assert d["facts"]["documents"] >= NOISE + 6

    # Killed mid-build: nothing swapped.
    version = active_version(session)
    p = subprocess.Popen([bin_path("omnify"), "replay", "onboarding", "--rate", "400",
                          "--grace", "0"], env=session.env(OMNIFY_LOG_LEVEL="warn"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    # Killed at a fifth, or after 8 s when the session's log is long.
    replay_id, seen, t0 = None, 0.0, time.monotonic()
    while time.monotonic() < t0 + 60:
        m = re.match(r"(\S+) building: .*\(([\d.]+)%\)", p.stderr.readline())
        if m:
            replay_id, seen = m.group(1), float(m.group(2))
            if seen >= 20 or (seen > 0 and time.monotonic() > t0 + 8):
                break
    assert replay_id and 0 < seen < 100, (replay_id, seen)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    assert active_version(session) == version
    assert checklist(mono, tok, cid) == live

    # The same command resumes it (once the killed one is silent 10 s)
    # and swaps in a new version with the same checklist.
    deadline = time.monotonic() + 40
    while True:
        r = replay(session, "onboarding", "--grace", "0")
        if r.returncode != 3 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"replay {replay_id} (resumed)" in r.stdout, r.stdout
    assert active_version(session) != version
    rebuilt = checklist(mono, tok, cid)
    assert rebuilt["steps"] == live["steps"]
    assert rebuilt["progress"] == live["progress"]

    # The live subscription writes into the new version.
    produce_event(session, "analytics", "analytics.report.scheduled",
                  {"report_id": "r1", "schedule": "weekly"}, tenant)
    done = until(lambda: (lambda b: b if b["progress"]["complete"] else None)(
        checklist(mono, tok, cid)), timeout=30, what="checklist complete after the swap")
    assert done["progress"]["percent"] == 100
    until(lambda: settled(session), timeout=30, every=2,
          what="the live version equal to the rebuilt ones after the swap")
