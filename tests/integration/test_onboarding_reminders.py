"""Onboarding reminders across kill -9: a step open past its deadline is
reminded of once, by one mail at the SendGrid stand-in (tests/providers)
and one onboarding.reminder.sent event, however often the onboarding
process dies around the firings.

omnify-onboarding runs on its own (a monolith without it serves the edge
and auth) with a checklist "day" of 2 s, so a client's deadlines come 2, 4,
6, 10, 12, 14 and 20 s after its creation. The process is killed with
SIGKILL shortly after each deadline (0 to 300 ms: while timers are being
claimed and fired, commands handled, mails sent) and started again at once,
as the same static member. A firing it held comes back when its lease runs
out, a command it did not commit is redelivered.

What is counted: the mails the stand-in accepted, by the Idempotency-Key
the outbox sends (its record's id: one per reminder), and the events on
the topic, by message id. A second reminder would be a second key or a
second id. A copy of the same mail (same key: a sender killed between the
provider's 202 and writing it down, which SendGrid cannot deduplicate) or of
the same event (same id: produced again before the offset was committed) is
the transport's at-least-once and is reported, not counted as a reminder.
"""

import os
import sys
import time

import pytest

from conftest import LOW_ARGON2, REPO, bin_path, http, login, signup, wait_status
from infra_helpers import auth, until
from test_auth_rbac import kcat_records, unmsgpack

sys.path.insert(0, os.path.join(REPO, "tests", "providers"))
from standin.client import MailServer  # noqa: E402

DAY_S = 2
DEADLINES_S = [2, 4, 6, 10, 12, 14, 20]
KILL_DELAYS_MS = [0, 40, 100, 200, 300]
CLIENTS = 6
KEY = "SG.reminders-test-key"
# The steps nothing completes here (the workspace is done before the
# clients are made), with who is mailed.
OPEN = {"terms_accepted": "contact", "team_invited": "manager",
        "connected:google_ads": "contact", "synced:google_ads": "manager",
        "dashboard_viewed": "manager", "report_scheduled": "manager"}


@pytest.fixture(scope="module")
def private(session):
    """Topics and databases of this module's own: no onboarding process of
    another module may fire these timers or send this outbox."""
    prefix = f"it{session.tag}rm."
    env = {"OMNIFY_TOPIC_PREFIX": prefix, "OMNIFY_MONGO_DB_PREFIX": f"it{session.tag}rm_"}
    r = session.run([bin_path("omnify"), "topics", "apply"], timeout=120, **env)
    assert r.returncode == 0, r.stderr
    yield env
    session.run([bin_path("omnify"), "topics", "delete", prefix], timeout=60, **env)


def events(session, topic):
    """{(client_id, step): [message ids]} of the reminder events on topic."""
    out = {}
    for rec in kcat_records(session, topic):
        h = rec.get("headers") or []
        hd = {h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)}
        if hd.get("type") != "onboarding.reminder.sent":
            continue
        body = unmsgpack((rec.get("payload") or "").encode("utf-8", "surrogateescape"))
        assert hd.get("tenant"), hd
        out.setdefault((body["client_id"], body["step"]), []).append(hd["id"])
    return out


def mails(mail, names):
    """{(client_id, step): [idempotency keys]} of the mails received, and
    {(client_id, step): recipient}."""
    keys, to = {}, {}
    for m in mail.mails:
        name = m["subject"].split("Onboarding of ", 1)[1].split(":", 1)[0]
        step = m["text"].rsplit("(step ", 1)[1].split(")", 1)[0]
        k = (names[name], step)
        keys.setdefault(k, []).append(m["idempotency_key"])
        to[k] = m["to"]
    return keys, to


def test_a_reminder_per_overdue_step_once_across_kill_9(procs, session, private):
    mail = MailServer(api_key=KEY).start()
    try:
        run(procs, session, private, mail)
    finally:
        mail.stop()


def run(procs, session, private, mail):
    onb_env = dict(private, OMNIFY_MAIL_BASE_URL=mail.url, OMNIFY_MAIL_API_KEY=KEY,
                   OMNIFY_ONBOARDING_DAY_S=str(DAY_S),
                   # Leases of a killed process run out sooner: a timer's is
                   # the producer timeout + 30 s, a mail's this (it must
                   # outlast a try, 10 s for mail, by 5 s: the outbox
                   # refuses a shorter one).
                   OMNIFY_KAFKA_MESSAGE_TIMEOUT_MS="2000",
                   OMNIFY_OUTBOX_LEASE_MS="16000",
                   # The restarted process takes the dead one's partitions at
                   # once (static membership), as a pod with a stable name.
                   OMNIFY_INSTANCE_ID="onboarding-reminders-0")
    mono = procs.start_monolith(["--except", "onboarding"], env=dict(private, **LOW_ARGON2))
    onb = procs.start_group("onboarding", env=onb_env)
    wait_status(mono.url, "onboarding")
    email, r = signup(mono.url)
    assert r.status == 201, r
    tok = login(mono.url, email, "correct horse battery").body["access_token"]
    tag = session.tag

    def create(name, i):
        r = http("POST", mono.url + "/api/onboarding/clients", headers=auth(tok), json_body={
            "name": name, "providers": ["google_ads"],
            "contacts": [{"name": "Bo", "email": f"bo{i}@client.example"}],
            "account_manager": {"name": "Al", "email": f"al{i}@agency.example"}})
        assert r.status == 201, r
        return r.body

    # The signup's own event completes the workspace step: wait for it, so
    # every client below starts with it done (and is never reminded of it).
    probe = create(f"Probe {tag}", 99)
    until(lambda: http("GET", f"{mono.url}/api/onboarding/clients/{probe['id']}",
                       headers=auth(tok)).body["steps"][0]["status"] == "done",
          timeout=30, what="the workspace step done")
    clients = [create(f"Client {i} {tag}", i) for i in range(CLIENTS)]
    names = {c["name"]: c["id"] for c in clients + [probe]}
    assert all(c["steps"][0]["status"] == "done" for c in clients)
    t0 = clients[0]["created_at"] / 1000.0

    # SIGKILL shortly after every deadline, and start again at once.
    kills = 0
    for n, d in enumerate(DEADLINES_S):
        at = t0 + d + KILL_DELAYS_MS[n % len(KILL_DELAYS_MS)] / 1000.0
        time.sleep(max(0.0, at - time.time()))
        onb.kill()
        kills += 1
        onb = procs.start_group("onboarding", env=onb_env, wait=False)
    # The last one stays; whatever the dead ones held comes back.
    wait_status(mono.url, "onboarding", timeout=60)
    want = {(c["id"], s) for c in clients for s in OPEN}
    topic = f"{private['OMNIFY_TOPIC_PREFIX']}onboarding.events"

    def all_there():
        got, _ = mails(mail, names)
        return want <= set(got) and want <= set(events(session, topic))
    until(all_there, timeout=120, every=2, what="a mail and an event for every overdue step")
    time.sleep(8)  # room for a second reminder, were there one

    keys, to = mails(mail, names)
    evs = events(session, topic)
    # Only the open steps of these clients, the probe's aside.
    probe_keys = {k for k in keys if k[0] == probe["id"]}
    assert set(keys) - probe_keys == want, sorted(set(keys) ^ want)
    assert set(k for k in evs if k[0] != probe["id"]) == want
    second_mails = {k: v for k, v in keys.items() if len(set(v)) != 1}
    second_events = {k: v for k, v in evs.items() if len(set(v)) != 1}
    assert not second_mails, second_mails
    assert not second_events, second_events
    for (cid, step), v in keys.items():
        assert v[0] == f"{cid}.{step}.remind"
    for c in clients:
        i = c["name"].split()[1]
        for step, who in OPEN.items():
            expect = f"bo{i}@client.example" if who == "contact" else f"al{i}@agency.example"
            assert to[(c["id"], step)] == expect, (step, to[(c["id"], step)])
    mail_copies = sum(len(v) - 1 for v in keys.values())
    event_copies = sum(len(v) - 1 for v in evs.values())
    print(f"\nreminders: {len(want)} steps over {CLIENTS} clients, {kills} kills; "
          f"{len(mail.mails)} mails ({mail_copies} resent copies), "
          f"{sum(len(v) for v in evs.values())} events ({event_copies} resent copies)")
    # The checklist says the same: every open step overdue by now.
    r = http("GET", f"{mono.url}/api/onboarding/clients/{clients[0]['id']}", headers=auth(tok))
    assert r.body["progress"]["overdue"] == len(OPEN), r.body["progress"]
