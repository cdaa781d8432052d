"""The indexes a running auth group leaves in the store.

They carry promises the code does not check by itself: one account per email
(the unique index), bounded retention of the operation log, idempotency keys,
single-use secrets, sessions and mails (TTL indexes on each record's own
expires_at), and the orders the lists are read in. Read back with
listIndexes, as any operator would see them.
"""

import os
import sys
import time
from urllib.parse import urlsplit

from conftest import LOW_ARGON2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fault"))
from faultlib import Store  # noqa: E402  (the tiny OP_MSG client)

# (database, collection): {index name: (keys in order, unique, expireAfterSeconds)}
EXPECTED = {
    ("ops", "operations"): {"expires_at_ttl": ([("expires_at", 1)], False, 0)},
    ("ops", "idempotency"): {"expires_at_ttl": ([("expires_at", 1)], False, 0)},
    ("auth", "users"): {"email_unique": ([("email", 1)], True, None)},
    ("auth", "tokens"): {
        "expires_at_ttl": ([("expires_at", 1)], False, 0),
        "org_kind": ([("org_id", 1), ("kind", 1)], False, None),
    },
    ("auth", "sessions"): {
        "user_id": ([("user_id", 1)], False, None),
        "expires_at_ttl": ([("expires_at", 1)], False, 0),
        "user_org": ([("user_id", 1), ("org_id", 1)], False, None),
    },
    ("auth", "memberships"): {
        "user_created": ([("user_id", 1), ("created_at", 1)], False, None),
        "org_role": ([("org_id", 1), ("role", 1)], False, None),
    },
    ("auth", "legal_documents"): {
        "type_version": ([("type", 1), ("version", -1)], False, None),
    },
    ("auth", "legal_acceptances"): {
        "user_accepted": ([("user_id", 1), ("accepted_at", -1)], False, None),
    },
    ("auth", "mail_outbox"): {
        "mail_due": ([("status", 1), ("next_attempt_at", 1)], False, None),
        "mail_expiry": ([("expires_at", 1)], False, 0),
    },
}


def indexes(st, db, coll):
    """{name: (keys in order, unique, expireAfterSeconds)} of db.coll."""
    try:
        reply = st.cmd({"listIndexes": coll, "$db": db})
    except Exception:  # no such collection (yet)
        return {}
    batch = reply.get("cursor", {}).get("firstBatch", {})
    found = {}
    for ix in (batch.values() if isinstance(batch, dict) else batch):
        keys = [(k, int(v)) for k, v in ix["key"].items()]
        ttl = ix.get("expireAfterSeconds")
        found[ix["name"]] = (keys, bool(ix.get("unique", False)),
                             None if ttl is None else int(ttl))
    return found


def test_auth_and_the_runtime_create_their_indexes(procs, session):
    uri = urlsplit(session.env().get("OMNIFY_MONGO_URI", "mongodb://127.0.0.1:27017"))
    st = Store(uri.hostname or "127.0.0.1", uri.port or 27017)
    try:
        procs.start_group("auth", **LOW_ARGON2)
        # The mailer makes its indexes from its own thread: give it time.
        deadline = time.monotonic() + 30
        while True:
            missing = []
            for (db, coll), want in EXPECTED.items():
                have = indexes(st, session.db_prefix + db, coll)
                for name, spec in want.items():
                    if have.get(name) != spec:
                        missing.append(f"{db}.{coll} {name}: want {spec}, have {have.get(name)}")
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert not missing, "\n".join(missing)
    finally:
        st.close()
