"""A signup redelivered after its run died between the verification token
and the mail still sends the mail.

The crash window is made by hand: once a signup has completed, its outbox
mail and its operation log record are deleted from the store, which leaves
what a run that died after writing the user and the token leaves behind.
The same command (same message id, same body) is then produced again with
kcat, as Kafka redelivers it. The auth group must queue the verification
mail again, with a link that verifies, and keep the one account it made.
An earlier version found the token of the first run and skipped the mail.

An invitation redelivered the same way (its mail and operation record gone,
its token left) must still be one invitation: the token whose secret was
never mailed is retired, the new mail's link accepts, and the pending list
shows the invitation once.
"""

import os
import re
import subprocess
import sys
import time
import types
from urllib.parse import urlsplit

import pytest

from conftest import (LOW_ARGON2, assert_problem, http, login, poll_operation, unique_email,
                      wait_status)
from test_auth_rbac import (PUBLIC_URL, Account, MailServer, brokers, kcat_produce,
                            kcat_records, produce_command, unmsgpack)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fault"))
from faultlib import Store  # noqa: E402  (the tiny OP_MSG client)

PASSWORD = "Redelivery-test-pw 1"
TOKEN_RE = re.compile(re.escape(PUBLIC_URL) + r"/verify-email\?token=([A-Za-z0-9_-]{20,})")


def store(session):
    uri = urlsplit(session.env().get("OMNIFY_MONGO_URI", "mongodb://127.0.0.1:27017"))
    return Store(uri.hostname or "127.0.0.1", uri.port or 27017)


def delete_one(st, db, coll, _id):
    """Delete the record _id, which must be there."""
    assert len(st.find_all(db, coll, {"_id": _id})) == 1, f"no {db}.{coll} {_id}"
    r = st.cmd({"delete": coll, "deletes": [{"q": {"_id": _id}, "limit": 1}], "$db": db})
    assert r.get("n") == 1, r


def wait_for(what, fn, timeout=60.0):
    """fn() until it returns something truthy, at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def mail_tokens(mail, email, count=1):
    """The verification tokens mailed to email, once there are count."""
    found = [TOKEN_RE.search(MailServer.text(m)) for m in mail.to(email)]
    tokens = [m.group(1) for m in found if m]
    return tokens if len(tokens) >= count else None


@pytest.fixture
def system(procs, session):
    """auth (with a SendGrid look-alike for its mails) and an edge, and a
    connection to the store to make the crash window with."""
    mail = MailServer()
    st = store(session)
    try:
        auth = procs.start_group("auth", **LOW_ARGON2, **mail.env())
        edge = procs.start_edge()
        wait_status(edge.url, "auth")
        yield types.SimpleNamespace(mail=mail, st=st, auth=auth, edge=edge)
    finally:
        st.close()
        mail.stop()


def test_redelivered_signup_queues_the_lost_verification_mail(system, session):
    mail, st, auth, edge = system.mail, system.st, system.auth, system.edge
    auth_db, ops_db = session.db_prefix + "auth", session.db_prefix + "ops"

    # 1. An asynchronous signup, completed, its verification mail sent.
    email = unique_email("redeliver")
    body = {"email": email, "password": PASSWORD, "name": "Redelivered"}
    r = http("POST", edge.url + "/api/auth/signup", json_body=body,
             headers={"Prefer": "respond-async"})
    assert r.status == 202, r
    op_id = r.body["operation_id"]
    done = poll_operation(edge.url, op_id)
    assert done.body.get("status") == "completed", done
    assert done.body["result"]["status"] == 201, done
    user_id = done.body["result"]["body"]["id"]
    [first_token] = wait_for("the first verification mail",
                             lambda: mail_tokens(mail, email))

    # 2. The crash window: the user and the token stay, the mail and the
    # operation log record are gone (whatever the outbox id scheme).
    [first_mail] = st.find_all(auth_db, "mail_outbox", {"to": email})
    delete_one(st, auth_db, "mail_outbox", first_mail["_id"])
    delete_one(st, ops_db, "operations", op_id)
    assert st.find_all(auth_db, "tokens", {"user_id": user_id, "kind": "verify"})
    r = http("GET", edge.url + "/api/operations/" + op_id)
    assert r.body.get("status") != "completed", r

    # 3. Kafka delivers the same command again. It completes as the
    # first run did: 201, the same user (no second account, no 409).
    produce_command(session, session.topic_prefix + "auth.commands",
                    "auth.signup", body, mid=op_id)
    done = poll_operation(edge.url, op_id)
    assert done.body.get("status") == "completed", done
    assert done.body["result"]["status"] == 201, done
    assert done.body["result"]["body"]["id"] == user_id, done

    # 4. Before its operation was recorded, the handler queued a mail to
    # this address again, under the command's id.
    queued = st.find_all(auth_db, "mail_outbox", {"to": email})
    assert len(queued) == 1, f"the redelivered signup queued {queued} for {email}"
    assert queued[0]["_id"] == op_id + ".verify", queued

    # 5. The new mail arrives and its link verifies the address.
    tokens = wait_for("a second verification mail", lambda: mail_tokens(mail, email, 2))
    assert len(tokens) == 2 and tokens[1] != first_token, tokens
    r = http("POST", edge.url + "/api/auth/verify-email", json_body={"token": tokens[1]})
    assert r.status == 200 and r.body == {"email_verified": True}, r

    # 6. One account, the password works, and it is verified.
    assert len(st.find_all(auth_db, "users", {"email": email})) == 1
    r = login(edge.url, email, PASSWORD)
    assert r.status == 200, r
    me = http("GET", edge.url + "/api/auth/me",
              headers={"Authorization": "Bearer " + r.body["access_token"]})
    assert me.status == 200 and me.body["id"] == user_id, me
    assert me.body["email_verified"] is True, me
    assert auth.alive(), auth.tail(30)


# ---------------------------------------------------------------------------
# A redelivered invitation
# ---------------------------------------------------------------------------

def command_records(session, topic, mid):
    """Every record on topic whose id header is mid, as kcat reads it:
    {partition, offset, key, headers: [(name, value), ...] in order,
    payload: the exact bytes}."""
    found = []
    for rec in kcat_records(session, topic):
        h = rec.get("headers") or []
        headers = list(zip(h[0::2], h[1::2]))
        if ("id", mid) not in headers:
            continue
        # The payload itself, byte for byte (msgpack is not text).
        raw = subprocess.run(["kcat", "-C", "-b", brokers(session), "-t", topic,
                              "-p", str(rec["partition"]), "-o", str(rec["offset"]),
                              "-c", "1", "-e", "-q", "-f", "%s"],
                             capture_output=True, timeout=60)
        assert raw.returncode == 0, raw.stderr
        found.append({"partition": rec["partition"], "offset": rec["offset"],
                      "key": rec.get("key"), "headers": headers, "payload": raw.stdout})
    return found


def produce_record(session, topic, rec):
    """Produce rec (from command_records) again with kcat, as Kafka
    redelivers it: same partition, key, headers (every one the edge sent,
    in order) and payload."""
    kcat_produce(session, topic, rec["payload"], key=rec["key"], headers=rec["headers"],
                 partition=rec["partition"])


def invite_tokens(st, auth_db, inv_id):
    """The invitation's tokens in the store: (all of them, the unused ones)."""
    tokens = st.find_all(auth_db, "tokens", {"kind": "invite", "invitation_id": inv_id})
    return tokens, [t for t in tokens if t.get("used_at") is None]


def test_redelivered_invitation_is_listed_once_and_its_mail_link_works(system, session):
    mail, st, auth, edge = system.mail, system.st, system.auth, system.edge
    auth_db, ops_db = session.db_prefix + "auth", session.db_prefix + "ops"
    topic = session.topic_prefix + "auth.commands"
    owner = Account(edge.url, name="Inviting Owner")
    invitee = unique_email("invitee")

    # 1. An asynchronous invitation, completed: its id is the command's.
    r = owner.call("POST", "/api/rbac/invitations", {"email": invitee, "role": "member"},
                   headers={"Prefer": "respond-async"})
    assert r.status == 202, r
    op_id = r.body["operation_id"]
    done = poll_operation(edge.url, op_id, headers=owner.headers())
    assert done.body.get("status") == "completed", done
    assert done.body["result"]["status"] == 201, done
    assert done.body["result"]["body"]["id"] == op_id, done
    first_token = mail.wait_invitation(invitee)
    [original] = command_records(session, topic, op_id)
    assert unmsgpack(original["payload"]) == {"email": invitee, "role": "member"}, original
    names = [n for n, _ in original["headers"]]
    assert {"tenant", "user", "roles", "session"} <= set(names), original["headers"]

    # 2. The crash window: the token stays, the mail and the operation
    # log record are gone.
    delete_one(st, auth_db, "mail_outbox", op_id + ".invite")
    delete_one(st, ops_db, "operations", op_id)
    tokens, unused = invite_tokens(st, auth_db, op_id)
    assert len(tokens) == 1 and len(unused) == 1, tokens
    r = http("GET", edge.url + "/api/operations/" + op_id, headers=owner.headers())
    assert r.body.get("status") != "completed", r

    # 3. Kafka delivers the very same record again (every header the
    # edge sent). It completes as the first run did: 201, the same id.
    produce_record(session, topic, original)
    again = command_records(session, topic, op_id)
    assert len(again) == 2, again
    assert [{k: v for k, v in rec.items() if k != "offset"} for rec in again] == \
        [{k: v for k, v in original.items() if k != "offset"}] * 2, again
    done = poll_operation(edge.url, op_id, headers=owner.headers())
    assert done.body.get("status") == "completed", done
    assert done.body["result"]["status"] == 201, done
    assert done.body["result"]["body"]["id"] == op_id, done

    # 4. One mail queued under the command's id, and one invitation:
    # listed once, with one usable token (the unmailed one retired).
    queued = st.find_all(auth_db, "mail_outbox", {"_id": op_id + ".invite"})
    assert len(queued) == 1, queued
    pending = owner.call("GET", "/api/rbac/invitations")
    assert pending.status == 200, pending
    listed = [i for i in pending.body["invitations"] if i["id"] == op_id]
    assert len(listed) == 1, f"invitation {op_id} listed {len(listed)} times: {pending.body}"
    assert listed[0]["email"] == invitee and listed[0]["role"] == "member", listed
    tokens, unused = invite_tokens(st, auth_db, op_id)
    assert len(unused) == 1, f"{len(unused)} unused tokens for invitation {op_id}: {tokens}"
    retired = [t for t in tokens if t.get("used_at") is not None]
    assert len(tokens) == 2 and retired[0].get("retired") == "never mailed", tokens

    # 5. The newest mail's link accepts the invitation; the retired
    # token of the first run does not.
    new_token = mail.wait_invitation(invitee, count=2)
    assert len(mail.to(invitee)) == 2 and new_token != first_token, mail.to(invitee)
    assert f"{PUBLIC_URL}/invitations/accept?token={new_token}" in \
        MailServer.text(mail.to(invitee)[-1])
    acct = Account(edge.url, name="Invitee", email=invitee)
    assert_problem(acct.call("POST", "/api/rbac/invitations/accept",
                             {"token": first_token}), 410)
    r = acct.call("POST", "/api/rbac/invitations/accept", {"token": new_token})
    assert r.status == 200, r
    assert r.body == {"org_id": owner.org, "role": "member"}, r
    pending = owner.call("GET", "/api/rbac/invitations").body["invitations"]
    assert op_id not in [i["id"] for i in pending], pending
    assert auth.alive(), auth.tail(30)
