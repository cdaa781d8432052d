"""A group asked to stop in the middle of a long batch stops between two
commands, and the commands it did not reach are handled by the next process.

The auth group handles commands inline, one after the other, and a signup
hashes a password with argon2id, which is slow on purpose. Forty signups are
queued while auth is frozen (SIGSTOP), so that the first poll after SIGCONT
takes them as one batch. Once the first signup has completed, auth gets
SIGTERM: it must exit 0 well before the batch is done (the runtime runs the
jobs it holds for at most RT_SLICE_MS before it looks at the stop flag and
serves rebalances again), without storing the offsets of what it did not
run. A second auth then completes every signup, each exactly once.
"""

import os
import signal
import time

from conftest import http, poll_operation, unique_email, wait_status

N = 40
# About 0.1-0.3 s per hash on these machines: the batch takes several
# seconds, far more than a slice.
SLOW_ARGON2 = {"OMNIFY_ARGON2_M_COST_KIB": "65536", "OMNIFY_ARGON2_T_COST": "2"}


def post_signup(edge_url, email):
    r = http("POST", edge_url + "/api/auth/signup",
             json_body={"email": email, "password": "Stop-mid-batch pw 1", "name": "Batch"},
             headers={"Prefer": "respond-async"})
    assert r.status == 202, r
    return r.body["operation_id"]


def status_of(edge_url, op_id):
    r = http("GET", f"{edge_url}/api/operations/{op_id}")
    assert r.status == 200, r
    return r.body.get("status"), r.body.get("result", {}).get("status")


def test_sigterm_mid_batch_stops_between_commands(procs):
    auth = procs.start_group("auth", **SLOW_ARGON2)
    edge = procs.start_edge()
    wait_status(edge.url, "auth")

    os.kill(auth.pid, signal.SIGSTOP)
    try:
        ops = [post_signup(edge.url, unique_email("batch")) for _ in range(N)]
    finally:
        os.kill(auth.pid, signal.SIGCONT)

    first = poll_operation(edge.url, ops[0], timeout=60)
    assert first.body.get("status") == "completed", first
    assert auth.stop(timeout=60) == 0, auth.tail(40)

    done_before = sum(1 for op in ops if status_of(edge.url, op)[0] == "completed")
    assert done_before < N, (
        f"auth finished all {N} signups of its batch before it stopped; "
        f"log:\n{auth.tail(20)}")

    procs.start_group("auth", **SLOW_ARGON2)
    deadline = time.monotonic() + 180
    results = {}
    for op in ops:
        r = poll_operation(edge.url, op, timeout=max(1.0, deadline - time.monotonic()))
        results[op] = (r.body.get("status"), r.body.get("result", {}).get("status"))
    missing = [op for op, (st, _) in results.items() if st != "completed"]
    assert not missing, f"{len(missing)} signup(s) never completed: {missing[:3]}"
    # Every signup made its account once: a signup run twice would answer
    # 409 (the address is taken) instead of 201.
    codes = sorted({code for _, code in results.values()})
    assert codes == [201], codes
    print(f"stopped after {done_before}/{N} signups; the next process did the rest")
