"""A consumer fenced out of its group joins again by itself.

A static member (OMNIFY_INSTANCE_ID) is fenced when another member joins
with the same group.instance.id; librdkafka then raises a fatal error and
that consumer never reads again. librdkafka 2.0 also fences a static member
by mistake after a session timeout (a commit sent with its reset member
id), which is how the broker-outage fault scenario found this. The runtime
must notice, replace its consumer and go on, without losing what was sent
meanwhile.

The intruder is kcat, joining the auth group with auth's instance id and
committing nothing.
"""

import re
import subprocess
import time

from conftest import LOW_ARGON2, http, poll_operation, unique_email, wait_status

INSTANCE = "fence-auth-0"


def brokers(session):
    return session.env().get("OMNIFY_KAFKA_BROKERS", "127.0.0.1:9092")


def wait_log(proc, needle, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if needle in proc.log_text():
            return True
        time.sleep(0.2)
    return False


def async_signup(edge_url):
    email = unique_email("fence")
    r = http("POST", edge_url + "/api/auth/signup",
             json_body={"email": email, "password": "fenced-password-1", "name": "Fence"},
             headers={"Prefer": "respond-async"})
    assert r.status == 202, r
    return email, r.body["operation_id"]


def rejoins(proc):
    text = http("GET", proc.url + "/metrics").raw.decode()
    m = re.search(r'^omnify_consumer_rejoins_total\{group="auth"\} (\d+)$', text, re.M)
    return int(m.group(1)) if m else None


def test_fenced_consumer_joins_again_and_loses_nothing(procs, session):
    auth = procs.start_group("auth", OMNIFY_INSTANCE_ID=INSTANCE, **LOW_ARGON2)
    edge = procs.start_edge()
    wait_status(edge.url, "auth")
    assert rejoins(auth) == 0

    group = session.topic_prefix + "auth"
    topic = session.topic_prefix + "auth.commands"
    intruder = subprocess.Popen(
        ["kcat", "-b", brokers(session), "-G", group, "-q", "-o", "end",
         "-X", f"group.instance.id={INSTANCE}",
         "-X", "partition.assignment.strategy=cooperative-sticky",
         "-X", "enable.auto.commit=false", "-X", "enable.auto.offset.store=false",
         topic],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_log(auth, "fenced out of group", 60), auth.tail(30)
        # Sent while the group is being formed again: kept in Kafka.
        sent = [async_signup(edge.url) for _ in range(5)]
    finally:
        intruder.kill()
        intruder.wait(timeout=10)

    for email, op_id in sent:
        done = poll_operation(edge.url, op_id, timeout=90)
        assert done.body.get("status") == "completed", (done, auth.tail(30))
        assert done.body["result"]["status"] == 201, done
        assert done.body["result"]["body"]["email"] == email, done

    # The same process did it, with a new consumer; and it is counted.
    assert auth.alive(), auth.tail(30)
    assert rejoins(auth) >= 1, auth.tail(30)
    # New work after the fight is over is handled too.
    r = http("POST", edge.url + "/api/auth/signup",
             json_body={"email": unique_email("fence"), "password": "fenced-password-1",
                        "name": "After"})
    assert r.status == 201, (r, auth.tail(30))
