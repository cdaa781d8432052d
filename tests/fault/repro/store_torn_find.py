#!/usr/bin/env python3
"""Reproducer: the local store returns documents that do not match the find
filter when an update races the find, so the mail outbox's claim
(find a due mail, then compare-and-set on the values read) lets two senders
claim one mail.

    python3 tests/fault/repro/store_torn_find.py [MAILS] [CLAIMERS]

Each claimer does what consumers/auth/mailer.c mailer__claim does:
  find {status: queued, next_attempt_at <= now, lease_until <= now}, limit 1
  update {_id, status: queued, attempts: <read>, lease_until: <read>}
         {$set: {lease_until: now + 60 s}, $inc: {attempts: 1}}
and, when the update matched, records the claim. On MongoDB a find returns
a document as it was when it matched the filter; here the find sometimes
returns the document as another claimer's update left it (lease_until in the
future, attempts + 1), the compare-and-set on those values then matches,
and the mail is claimed (sent) twice. Exit 1 when that happened.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import faultlib as fl  # noqa: E402  (the tiny OP_MSG client)

HOST, PORT = fl.STORE_HOST, fl.STORE_PORT


def Conn():
    """A store connection: faultlib's OP_MSG client."""
    return fl.Store(HOST, PORT, timeout=30)


def date(ms):
    return ("date", ms)


def main():
    mails = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    claimers = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    db = "fltrepro_" + os.urandom(3).hex()
    c = Conn()
    now = int(time.time() * 1000)
    docs = [{"_id": f"m{i:05d}", "status": "queued", "attempts": 0,
             "next_attempt_at": date(now - 1000), "lease_until": date(0)} for i in range(mails)]
    for k in range(0, mails, 100):
        c.cmd({"insert": "outbox", "documents": docs[k:k + 100], "$db": db})
    claims, lock = {}, threading.Lock()

    def claimer(name):
        cc = Conn()
        while True:
            t = int(time.time() * 1000)
            r = cc.cmd({"find": "outbox", "filter": {
                "status": "queued", "next_attempt_at": {"$lte": date(t)},
                "lease_until": {"$lte": date(t)}}, "limit": 1, "singleBatch": True, "$db": db})
            batch = r["cursor"]["firstBatch"]
            if not batch:
                return
            d = batch["0"]
            u = cc.cmd({"update": "outbox", "updates": [{
                "q": {"_id": d["_id"], "status": "queued", "attempts": d["attempts"],
                      "lease_until": d["lease_until"]},
                "u": {"$set": {"lease_until": date(t + 60000)}, "$inc": {"attempts": 1}}}],
                "$db": db})
            if u.get("n", 0) == 1:
                with lock:
                    claims.setdefault(d["_id"], []).append(
                        (name, d["attempts"], d["lease_until"][1] - t))
                cc.cmd({"update": "outbox", "updates": [{
                    "q": {"_id": d["_id"], "lease_until": date(t + 60000)},
                    "u": {"$set": {"status": "sent"}}}], "$db": db})

    threads = [threading.Thread(target=claimer, args=(chr(65 + i),)) for i in range(claimers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    c.cmd({"dropDatabase": 1, "$db": db})
    twice = {k: v for k, v in claims.items() if len(v) > 1}
    print(f"{mails} mails, {claimers} claimers: {len(twice)} claimed twice")
    for k, v in list(twice.items())[:5]:
        print(f"  {k}: " + ", ".join(f"{n} read attempts={a} lease_until=now{lease:+d}ms"
                                     for n, a, lease in v))
    return 1 if twice else 0


if __name__ == "__main__":
    sys.exit(main())
