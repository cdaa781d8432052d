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
import socket
import struct
import sys
import threading
import time

HOST, PORT = "127.0.0.1", 27017


def enc(doc):
    out = b""
    for k, v in doc.items():
        kb = k.encode() + b"\x00"
        if isinstance(v, tuple) and v[0] == "date":
            out += b"\x09" + kb + struct.pack("<q", v[1])
        elif isinstance(v, bool):
            out += b"\x08" + kb + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            out += b"\x12" + kb + struct.pack("<q", v)
        elif isinstance(v, str):
            vb = v.encode() + b"\x00"
            out += b"\x02" + kb + struct.pack("<i", len(vb)) + vb
        elif isinstance(v, dict):
            out += b"\x03" + kb + enc(v)
        elif isinstance(v, list):
            out += b"\x04" + kb + enc({str(i): x for i, x in enumerate(v)})
        else:
            raise TypeError(type(v))
    return struct.pack("<i", len(out) + 5) + out + b"\x00"


def dec(b):
    out, i = {}, 4
    while b[i] != 0:
        t = b[i]
        e = b.index(b"\x00", i + 1)
        k = b[i + 1:e].decode()
        i = e + 1
        if t == 0x09:
            out[k] = ("date", struct.unpack_from("<q", b, i)[0]); i += 8
        elif t == 0x10:
            out[k] = struct.unpack_from("<i", b, i)[0]; i += 4
        elif t == 0x12:
            out[k] = struct.unpack_from("<q", b, i)[0]; i += 8
        elif t == 0x01:
            out[k] = struct.unpack_from("<d", b, i)[0]; i += 8
        elif t == 0x08:
            out[k] = b[i] == 1; i += 1
        elif t == 0x02:
            n = struct.unpack_from("<i", b, i)[0]
            out[k] = b[i + 4:i + 3 + n].decode(); i += 4 + n
        elif t in (0x03, 0x04):
            n = struct.unpack_from("<i", b, i)[0]
            out[k] = dec(b[i:i + n]); i += n
        elif t == 0x0A:
            out[k] = None
        else:
            raise ValueError(f"bson type 0x{t:02x}")
    return out


class Conn:
    def __init__(self):
        self.s = socket.create_connection((HOST, PORT), timeout=30)
        self.rid = 0

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def cmd(self, doc):
        self.rid += 1
        msg = struct.pack("<i", 0) + b"\x00" + enc(doc)
        self.s.sendall(struct.pack("<iiii", 16 + len(msg), self.rid, 0, 2013) + msg)
        n = struct.unpack("<i", self._recv(4))[0]
        return dec(self._recv(n - 4)[17:])


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
