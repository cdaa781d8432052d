"""A signup redelivered after its run died between the verification token
and the mail still sends the mail.

The crash window is made by hand: once a signup has completed, its outbox
mail and its operation log record are deleted from the store, which leaves
what a run that died after writing the user and the token leaves behind.
The same command (same message id, same body) is then produced again with
kcat, as Kafka redelivers it. The auth group must queue the verification
mail again, with a link that verifies, and keep the one account it made.
An earlier version found the token of the first run and skipped the mail.
"""

import os
import re
import sys
import time
from urllib.parse import urlsplit

from conftest import LOW_ARGON2, http, login, poll_operation, unique_email, wait_status
from test_auth_rbac import PUBLIC_URL, MailServer, produce_command

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


def wait_for(what, fn, timeout=30.0):
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


def test_redelivered_signup_queues_the_lost_verification_mail(procs, session):
    mail = MailServer()
    st = store(session)
    try:
        auth = procs.start_group("auth", **LOW_ARGON2, **mail.env())
        edge = procs.start_edge()
        wait_status(edge.url, "auth")
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
    finally:
        st.close()
        mail.stop()
