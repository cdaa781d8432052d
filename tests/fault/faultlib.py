"""Building blocks of the fault scenarios (tests/fault/run).

Python 3 standard library only, plus the real binaries (build/bin), the
real broker and store that `compose/local/infra up` starts, and kcat.

What is here:
- Env / Proc: the binaries started with a scenario's own topic and database
  prefixes, each logging to its own file, killed by pid at the end.
- Load: a small multi-threaded signup generator over keep-alive
  connections (http.client), `Prefer: respond-async`, one Idempotency-Key
  per logical request, retried with the same key after 503 or a connection
  error, so each request is counted as accepted at most once.
- poll_operations: GET /api/operations/{id} until every accepted request is
  completed (bounded).
- read_topic / msgpack_decode: kcat reads a topic to its end; the values
  (msgpack) are decoded here.
- verify: the exactly-once books: every accepted signup completed with 201,
  and its user has exactly one auth.user.registered event.
"""

import hashlib
import http.client
import http.server
import json
import os
import random
import secrets
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("OMNIFY_BIN_DIR", os.path.join(REPO, "build", "bin"))
INFRA = os.path.join(REPO, "compose", "local", "infra")
HOST = "127.0.0.1"
# The broker and store that compose/local/infra runs, by the same variables
# (OMNIFY_INFRA_KAFKA_HOST/PORT, OMNIFY_INFRA_STORE_HOST/PORT): run with an
# infra of your own on other ports and a local dir of your own
# (OMNIFY_LOCAL_DIR), since the scenarios stop and start it.
KAFKA = "{}:{}".format(os.environ.get("OMNIFY_INFRA_KAFKA_HOST", "127.0.0.1"),
                       os.environ.get("OMNIFY_INFRA_KAFKA_PORT", "9092"))
STORE_HOST = os.environ.get("OMNIFY_INFRA_STORE_HOST", "127.0.0.1")
STORE_PORT = int(os.environ.get("OMNIFY_INFRA_STORE_PORT", "27017"))

# argon2id as cheap as the settings allow in spirit (64 KiB, one pass):
# these scenarios count messages, they do not measure hashing.
LOG_LEVEL = "info"  # of the processes started (run --log-level)
LOW_ARGON2 = {"OMNIFY_ARGON2_M_COST_KIB": "64", "OMNIFY_ARGON2_T_COST": "1"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------
# Ports and processes
# ---------------------------------------------------------------------------

_given_ports = set()
_ports_lock = threading.Lock()


def free_port():
    """A port nobody listens on now, never handed out twice in this run,
    and never one of the well-known 8000..8007."""
    with _ports_lock:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in _given_ports and not 8000 <= port <= 8007:
                _given_ports.add(port)
                return port
    raise RuntimeError("no free port")


class Env:
    """A scenario's settings: its own topic and database prefixes."""

    def __init__(self, tag, logdir, extra=None):
        self.tag = tag
        self.extra = dict(extra or {})
        self.topic_prefix = f"{tag}."
        self.db_prefix = f"{tag}_"
        self.jwt_secret = secrets.token_urlsafe(48)
        self.logdir = logdir
        os.makedirs(logdir, exist_ok=True)

    def vars(self, **overrides):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIFY_")}
        env.update({
            "OMNIFY_TOPIC_PREFIX": self.topic_prefix,
            "OMNIFY_MONGO_DB_PREFIX": self.db_prefix,
            "OMNIFY_JWT_SECRET": self.jwt_secret,
            "OMNIFY_LOG_LEVEL": LOG_LEVEL,
            "OMNIFY_KAFKA_BROKERS": KAFKA,
            "OMNIFY_MONGO_URI": f"mongodb://{STORE_HOST}:{STORE_PORT}",
        })
        env.update(LOW_ARGON2)
        # The edge limits signups per client address and per account; all
        # of this load comes from one address.
        env.update({"OMNIFY_RATE_IP_PER_MIN": "1000000",
                    "OMNIFY_RATE_ACCOUNT_PER_MIN": "1000000"})
        env.update(self.extra)
        for k, v in overrides.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        return env

    def run(self, argv, timeout=120, **overrides):
        return subprocess.run(argv, env=self.vars(**overrides), capture_output=True,
                              text=True, timeout=timeout)


class Proc:
    """One binary; stdout and stderr go to its own log file."""

    def __init__(self, env, name, argv, **overrides):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(env.logdir, f"{name}.log")
        n = 1
        while os.path.exists(self.log_path):
            n += 1
            self.log_path = os.path.join(env.logdir, f"{name}.{n}.log")
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(argv, env=env.vars(**overrides),
                                      stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=self._log, start_new_session=True)
        self.pid = self.popen.pid
        self.url = None
        self.killed = False  # by us, with SIGKILL

    def alive(self):
        return self.popen.poll() is None

    def returncode(self):
        return self.popen.poll()

    def kill9(self):
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.killed = True
            self.popen.wait(timeout=10)
        self._log.close()

    def terminate(self, timeout=30.0):
        """SIGTERM and wait; the exit status, or None if we had to kill."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.killed = True
                self.popen.wait(timeout=10)
                self._log.close()
                return None
        self._log.close()
        return self.popen.returncode

    def log_lines(self):
        out = []
        try:
            with open(self.log_path, "rb") as f:
                for raw in f:
                    try:
                        out.append(json.loads(raw))
                    except ValueError:
                        out.append({"level": "raw", "msg": raw.decode("utf-8", "replace").rstrip()})
        except OSError:
            pass
        return out

    def tail(self, n=20):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""


class Processes:
    """Every process a scenario started; all are killed by pid at the end."""

    def __init__(self, env):
        self.env = env
        self.all = []

    def start(self, name, argv, **overrides):
        p = Proc(self.env, name, argv, **overrides)
        self.all.append(p)
        return p

    def edge(self, name="edge", argv=None, **overrides):
        port = free_port()
        p = self.start(name, argv or [os.path.join(BIN, "omnify-edge")],
                       OMNIFY_HTTP_PORT=port, OMNIFY_HTTP_BIND=HOST,
                       OMNIFY_HTTP_THREADS=4, **overrides)
        p.url = f"http://{HOST}:{port}"
        return p

    def monolith(self, args, name="monolith", **overrides):
        return self.edge(name, [os.path.join(BIN, "omnify"), "monolith", *args],
                         **overrides)

    def group(self, group, name=None, **overrides):
        port = free_port()
        p = self.start(name or group, [os.path.join(BIN, "omnify-" + group)],
                       OMNIFY_OPS_PORT=port, OMNIFY_OPS_BIND=HOST, **overrides)
        p.url = f"http://{HOST}:{port}"
        return p

    def cleanup(self):
        for p in self.all:
            try:
                if p.alive():
                    os.kill(p.pid, signal.SIGKILL)
                    p.popen.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            try:
                p._log.close()
            except OSError:
                pass


def http_get(url, timeout=5.0, headers=None):
    """(status, parsed body or text) or (None, error) on connection errors."""
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/" + path, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)
    finally:
        conn.close()


def wait_ready(proc, path="/ready", timeout=120.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} (pid {proc.pid}) exited with "
                               f"{proc.returncode()} before {path} answered; log:\n{proc.tail(30)}")
        last = http_get(proc.url + path, timeout=3)
        if last[0] == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name}: {path} not 200 after {timeout}s: {last}; log:\n{proc.tail(30)}")


def wait_group(edge_url, group="auth", timeout=60.0):
    """GET /api/<group>/status until a consumer answers through Kafka."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = http_get(f"{edge_url}/api/{group}/status", timeout=10,
                        headers={"Prefer": "wait=5"})
        if last[0] == 200:
            return last[1]
        time.sleep(0.3)
    raise RuntimeError(f"/api/{group}/status not 200 after {timeout}s: {last}")


def wait_kafka(timeout=300.0):
    """Until the broker answers metadata (others restart it now and then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["kcat", "-L", "-b", KAFKA, "-m", "5", "-t", "__omnify_fault_probe"],
                           capture_output=True, text=True, timeout=60)
        if "broker 1 at" in r.stdout or " brokers:" in r.stdout:
            return
        time.sleep(2.0)
    raise RuntimeError(f"the broker at {KAFKA} did not answer for {timeout:.0f} s")


def topic_names(prefix):
    with open(os.path.join(REPO, "schemas", "topics.json")) as f:
        return [prefix + t["name"] for t in json.load(f)["topics"]]


def wait_topics(prefix, timeout=180.0):
    """Wait until the broker's metadata lists every topic of the prefix,
    each partition with a leader. `omnify topics apply` returns once the
    controller accepted the creation; a busy broker may publish the new
    topics many seconds later, and the binaries refuse to start before."""
    want = set(topic_names(prefix))
    deadline = time.monotonic() + timeout
    missing = want
    while time.monotonic() < deadline:
        r = subprocess.run(["kcat", "-L", "-b", KAFKA, "-m", "10"], capture_output=True,
                           text=True, timeout=60)
        seen, bad = set(), set()
        topic = None
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith('topic "'):
                topic = line.split('"')[1]
                if topic in want:
                    seen.add(topic)
                    if "error" in line.lower():
                        bad.add(topic)
            elif topic in want and line.startswith("partition ") and "leader -1" in line:
                bad.add(topic)
        missing = (want - seen) | bad
        if not missing:
            return time.monotonic() - (deadline - timeout)
        time.sleep(1.0)
    raise RuntimeError(f"topics not in the broker's metadata after {timeout:.0f} s: "
                       f"{sorted(missing)[:5]}")


def _kafka_call(api_key, version, body, timeout=60.0):
    """One request/response with the broker (request header v1, response
    header v0: the non-flexible versions)."""
    host, _, port = KAFKA.split(",")[0].partition(":")
    client = b"omnify-fault"
    header = struct.pack(">hhih", api_key, version, 1, len(client)) + client
    payload = header + body
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        data = _recv_exact(sock, size)
    return data[4:]  # past the correlation id


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def delete_topics(names, timeout_ms=30000):
    """DeleteTopics v1 (no admin tool on this machine): {name: error code}.
    Keeps the shared broker from piling up partitions run after run."""
    body = struct.pack(">i", len(names))
    for n in names:
        b = n.encode()
        body += struct.pack(">h", len(b)) + b
    body += struct.pack(">i", timeout_ms)
    data = _kafka_call(20, 1, body, timeout=timeout_ms / 1000 + 30)
    pos = 4  # throttle time
    count = struct.unpack_from(">i", data, pos)[0]
    pos += 4
    out = {}
    for _ in range(count):
        ln = struct.unpack_from(">h", data, pos)[0]
        pos += 2
        name = data[pos:pos + ln].decode()
        pos += ln
        out[name] = struct.unpack_from(">h", data, pos)[0]
        pos += 2
    return out


def _bson(doc):
    """Enough BSON for a command: str, int32 values."""
    out = b""
    for k, v in doc.items():
        kb = k.encode() + b"\x00"
        if isinstance(v, str):
            vb = v.encode() + b"\x00"
            out += b"\x02" + kb + struct.pack("<i", len(vb)) + vb
        else:
            out += b"\x10" + kb + struct.pack("<i", v)
    return struct.pack("<i", len(out) + 5) + out + b"\x00"


def drop_databases(names, uri_host=STORE_HOST, port=STORE_PORT):
    """dropDatabase for each name over OP_MSG (no mongo client here)."""
    for i, name in enumerate(names):
        doc = _bson({"dropDatabase": 1, "$db": name})
        msg = struct.pack("<i", 0) + b"\x00" + doc
        header = struct.pack("<iiii", 16 + len(msg), i + 1, 0, 2013)
        with socket.create_connection((uri_host, port), timeout=30) as s:
            s.sendall(header + msg)
            length = struct.unpack("<i", _recv_exact(s, 4))[0]
            _recv_exact(s, length - 4)


def bson_encode(doc):
    """Enough BSON for commands: str, int (int64), bool, None, dict, list,
    ("date", ms)."""
    out = b""
    for k, v in doc.items():
        kb = k.encode() + b"\x00"
        if isinstance(v, tuple) and v[0] == "date":
            out += b"\x09" + kb + struct.pack("<q", v[1])
        elif v is None:
            out += b"\x0a" + kb
        elif isinstance(v, bool):
            out += b"\x08" + kb + (b"\x01" if v else b"\x00")
        elif isinstance(v, int):
            out += b"\x12" + kb + struct.pack("<q", v)
        elif isinstance(v, str):
            vb = v.encode() + b"\x00"
            out += b"\x02" + kb + struct.pack("<i", len(vb)) + vb
        elif isinstance(v, dict):
            out += b"\x03" + kb + bson_encode(v)
        elif isinstance(v, list):
            out += b"\x04" + kb + bson_encode({str(i): x for i, x in enumerate(v)})
        else:
            raise TypeError(type(v))
    return struct.pack("<i", len(out) + 5) + out + b"\x00"


def bson_decode(b):
    """BSON document -> dict (arrays as dicts keyed "0", "1", ...; dates as
    ("date", ms); binary as bytes; ObjectId as hex)."""
    out, i = {}, 4
    while b[i] != 0:
        t = b[i]
        e = b.index(b"\x00", i + 1)
        k = b[i + 1:e].decode("utf-8", "replace")
        i = e + 1
        if t == 0x01:
            out[k] = struct.unpack_from("<d", b, i)[0]; i += 8
        elif t in (0x02, 0x0D, 0x0E):
            n = struct.unpack_from("<i", b, i)[0]
            out[k] = b[i + 4:i + 3 + n].decode("utf-8", "replace"); i += 4 + n
        elif t in (0x03, 0x04):
            n = struct.unpack_from("<i", b, i)[0]
            out[k] = bson_decode(b[i:i + n]); i += n
        elif t == 0x05:
            n = struct.unpack_from("<i", b, i)[0]
            out[k] = bytes(b[i + 5:i + 5 + n]); i += 5 + n
        elif t == 0x07:
            out[k] = b[i:i + 12].hex(); i += 12
        elif t == 0x08:
            out[k] = b[i] == 1; i += 1
        elif t == 0x09:
            out[k] = ("date", struct.unpack_from("<q", b, i)[0]); i += 8
        elif t in (0x0A, 0x06, 0x7F, 0xFF):
            out[k] = None
        elif t == 0x10:
            out[k] = struct.unpack_from("<i", b, i)[0]; i += 4
        elif t in (0x11, 0x12):
            out[k] = struct.unpack_from("<q", b, i)[0]; i += 8
        elif t == 0x13:
            out[k] = bytes(b[i:i + 16]); i += 16
        else:
            raise ValueError(f"bson type 0x{t:02x}")
    return out


class Store:
    """A tiny MongoDB wire-protocol client (OP_MSG) for reading what the
    services stored: no mongo client on this machine."""

    def __init__(self, host=STORE_HOST, port=STORE_PORT, timeout=60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.rid = 0

    def close(self):
        self.sock.close()

    def cmd(self, doc):
        self.rid += 1
        msg = struct.pack("<i", 0) + b"\x00" + bson_encode(doc)
        self.sock.sendall(struct.pack("<iiii", 16 + len(msg), self.rid, 0, 2013) + msg)
        n = struct.unpack("<i", _recv_exact(self.sock, 4))[0]
        reply = bson_decode(_recv_exact(self.sock, n - 4)[17:])
        if reply.get("ok") != 1.0:
            raise RuntimeError(f"store: {doc.get('find') or list(doc)[0]}: {reply}")
        return reply

    def find_all(self, db, coll, filt=None, projection=None):
        q = {"find": coll, "filter": filt or {}, "batchSize": 5000, "$db": db}
        if projection:
            q["projection"] = projection
        r = self.cmd(q)
        docs = list(r["cursor"]["firstBatch"].values())
        cursor = r["cursor"].get("id", 0)
        while cursor:
            r = self.cmd({"getMore": cursor, "collection": coll, "batchSize": 5000, "$db": db})
            docs += list(r["cursor"]["nextBatch"].values())
            cursor = r["cursor"].get("id", 0)
        return docs


def infra_pids():
    """{kafka: pid, store: pid} as compose/local/infra recorded them: a
    change means the component was restarted (by us, or by someone else)."""
    out = {}
    run = os.path.join(os.environ.get("OMNIFY_LOCAL_DIR", os.path.join(REPO, ".local")), "run")
    for name in ("kafka", "store"):
        try:
            with open(os.path.join(run, f"{name}.pid")) as f:
                out[name] = f.read().strip()
        except OSError:
            out[name] = None
    return out


def infra(*args, timeout=300, tries=3):
    """compose/local/infra; `up` is retried: others share this broker and
    store and may be starting them at the same moment."""
    for attempt in range(tries if args and args[0] == "up" else 1):
        r = subprocess.run([INFRA, *args], capture_output=True, text=True, timeout=timeout)
        if r.returncode == 0:
            if attempt:
                log(f"  infra {' '.join(args)}, attempt {attempt + 1}: "
                    + " / ".join(ln for ln in r.stdout.splitlines() if "deps:" not in ln))
            return r.stdout
        log(f"  infra {' '.join(args)} failed ({r.returncode}), attempt {attempt + 1}: "
            f"{(r.stdout + r.stderr).strip()[-300:]}")
        time.sleep(3)
    raise RuntimeError(f"infra {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")


# ---------------------------------------------------------------------------
# A mail provider that answers as SendGrid's v3 mail-send does
# ---------------------------------------------------------------------------

class FakeMail:
    """POST /v3/mail/send -> 202, recording every mail: auth's outbox sender
    posts here (OMNIFY_MAIL_BASE_URL), so mails are counted where a user
    would receive them. Per recipient: the texts (a text holds its own
    single-use link, so two different texts are two verification mails)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.mails = {}   # to -> list of sha1(text)
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                ok = self.path == "/v3/mail/send" and \
                    self.headers.get("Authorization") == "Bearer fault-test-key"
                try:
                    doc = json.loads(raw)
                    to = doc["personalizations"][0]["to"][0]["email"]
                    text = "".join(c.get("value", "") for c in doc.get("content", []))
                except (ValueError, KeyError, IndexError, TypeError):
                    ok = False
                if ok:
                    digest = hashlib.sha1(text.encode()).hexdigest()
                    with outer.lock:
                        outer.requests += 1
                        outer.mails.setdefault(to.lower(), []).append(digest)
                self.send_response(202 if ok else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{HOST}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def env(self):
        return {"OMNIFY_MAIL_BASE_URL": self.url, "OMNIFY_MAIL_API_KEY": "fault-test-key"}

    def count(self, emails):
        """{email: (distinct texts, mails)} for the given recipients."""
        with self.lock:
            out = {}
            for e in emails:
                got = self.mails.get(e.lower(), [])
                out[e] = (len(set(got)), len(got))
            return out

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------

class Request:
    __slots__ = ("i", "email", "key", "attempts", "statuses", "op_id", "accepted_at",
                 "final", "result", "user_id", "gave_up", "all_ops")

    def __init__(self, i, tag):
        self.i = i
        self.email = f"{tag}-{i}-{secrets.token_hex(4)}@fault.example.com"
        self.key = uuid.uuid4().hex
        self.attempts = 0
        self.statuses = {}   # status (or "conn") -> count
        self.op_id = None    # the accepted operation
        self.all_ops = []    # every 202 this key got (one expected)
        self.accepted_at = None
        self.final = None    # operation state once polled: "completed", ...
        self.result = None   # (status, body) of the completed operation
        self.user_id = None
        self.gave_up = False


class Load:
    """Signups at a target rate from `threads` workers, each with its own
    keep-alive connection to the edge."""

    RETRY_STATUSES = {429, 502, 503, 504}

    def __init__(self, edge_url, tag, n, rate, threads=8, give_up_s=240.0, burst=None):
        self.edge_url = edge_url
        hostport = edge_url[len("http://"):]
        self.host, _, port = hostport.partition(":")
        self.port = int(port)
        self.requests = [Request(i, tag) for i in range(n)]
        self.rate = rate
        # burst=(fraction, seconds): that fraction at once, the rest spread
        # evenly over the given seconds.
        self.burst = burst
        self.threads = threads
        self.give_up_s = give_up_s
        self._next = 0
        self._lock = threading.Lock()
        self._t0 = None
        self._workers = []
        self.sent = 0            # logical requests started
        self.http_attempts = 0
        self.retries = 0
        self.done = threading.Event()
        self.aborted = threading.Event()  # stop sending and retrying
        self.statuses = {}       # status of every POST answer -> count
        self.progress = 0        # requests finished (accepted or given up)

    # -- scheduling: request i may start at t0 + i / rate --------------------
    def _take(self):
        with self._lock:
            if self._next >= len(self.requests) or self.aborted.is_set():
                return None
            req = self.requests[self._next]
            self._next += 1
            self.sent += 1
        delay = 0.0
        if self.burst:
            frac, seconds = self.burst
            k = int(len(self.requests) * frac)
            if req.i >= k:
                delay = self._t0 + 1.0 + (req.i - k) * seconds / max(1, len(self.requests) - k) \
                    - time.monotonic()
        elif self.rate:
            delay = self._t0 + req.i / self.rate - time.monotonic()
        if delay > 0:
            self.aborted.wait(delay)
        return req

    def start(self):
        self._t0 = time.monotonic()
        for _ in range(self.threads):
            t = threading.Thread(target=self._worker, daemon=True)
            t.start()
            self._workers.append(t)
        threading.Thread(target=self._joiner, daemon=True).start()

    def _joiner(self):
        for t in self._workers:
            t.join()
        self.done.set()

    def wait(self, timeout=None):
        return self.done.wait(timeout)

    def fraction_sent(self):
        return self.sent / max(1, len(self.requests))

    def _conn(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def _worker(self):
        conn = self._conn()
        while True:
            req = self._take()
            if req is None:
                break
            conn = self._one(conn, req)
            with self._lock:
                self.progress += 1
        conn.close()

    def _one(self, conn, req):
        body = json.dumps({"email": req.email, "password": "correct horse battery",
                           "name": f"Fault {req.i}"})
        headers = {"Content-Type": "application/json", "Prefer": "respond-async",
                   "Idempotency-Key": req.key}
        deadline = time.monotonic() + self.give_up_s
        backoff = 0.1
        while True:
            req.attempts += 1
            with self._lock:
                self.http_attempts += 1
                if req.attempts > 1:
                    self.retries += 1
            status, data, retry_after = None, None, None
            try:
                conn.request("POST", "/api/auth/signup", body=body, headers=headers)
                r = conn.getresponse()
                raw = r.read()
                status = r.status
                retry_after = r.getheader("Retry-After")
                try:
                    data = json.loads(raw)
                except ValueError:
                    data = raw.decode("utf-8", "replace")
                if (r.getheader("Connection") or "").lower() == "close":
                    conn.close()
                    conn = self._conn()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = self._conn()
                status = "conn"
            req.statuses[status] = req.statuses.get(status, 0) + 1
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if status == 202 and isinstance(data, dict) and data.get("operation_id"):
                req.all_ops.append(data["operation_id"])
                if req.op_id is None:
                    req.op_id = data["operation_id"]
                    req.accepted_at = time.monotonic()
                return conn
            if status == "conn" or status in self.RETRY_STATUSES:
                if time.monotonic() > deadline or self.aborted.is_set():
                    req.gave_up = True
                    return conn
                wait = backoff
                if retry_after and str(retry_after).strip().isdigit():
                    wait = max(wait, min(float(retry_after), 2.0))
                time.sleep(wait * (0.5 + random.random()))
                backoff = min(backoff * 2, 2.0)
                continue
            # Anything else is a final refusal (400, 422, ...): not accepted.
            req.gave_up = True
            req.result = (status, data)
            return conn

    def accepted(self):
        return [r for r in self.requests if r.op_id]


def poll_operations(edge_url, reqs, timeout, threads=6, stop=None, quiet=False):
    """Poll GET /api/operations/{id} for every request until each is
    completed or `timeout` passes. Returns the number still pending."""
    hostport = edge_url[len("http://"):]
    host, _, port = hostport.partition(":")
    pending = [r for r in reqs if r.op_id and r.final != "completed"]
    deadline = time.monotonic() + timeout
    lock = threading.Lock()
    unexpected = {}

    def check(conn, req):
        try:
            conn.request("GET", f"/api/operations/{req.op_id}")
            r = conn.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            return http.client.HTTPConnection(host, int(port), timeout=30), False
        if r.status != 200:
            with lock:
                unexpected[r.status] = unexpected.get(r.status, 0) + 1
            return conn, False
        doc = json.loads(raw)
        if doc.get("status") == "completed":
            res = doc.get("result") or {}
            req.final = "completed"
            req.result = (res.get("status"), res.get("body"))
            body = res.get("body")
            if isinstance(body, dict):
                req.user_id = body.get("id")
            return conn, True
        return conn, False

    while pending and time.monotonic() < deadline and not (stop and stop.is_set()):
        chunks = [pending[i::threads] for i in range(threads)]
        still = []

        def work(chunk):
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            left = []
            for req in chunk:
                if time.monotonic() > deadline:
                    left.append(req)
                    continue
                conn, ok = check(conn, req)
                if not ok:
                    left.append(req)
            conn.close()
            with lock:
                still.extend(left)
        ts = [threading.Thread(target=work, args=(c,)) for c in chunks]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if not quiet and len(still) != len(pending):
            log(f"  operations: {len(reqs) - len(still)}/{len(reqs)} completed")
        pending = still
        if pending:
            time.sleep(1.0)
    if unexpected and not quiet:
        log(f"  operation lookups answered (not 200): {unexpected}")
    return len(pending)


# ---------------------------------------------------------------------------
# Kafka, read with kcat
# ---------------------------------------------------------------------------

def read_topic(topic, timeout=120):
    """Every record of `topic` from the beginning to its current end:
    a list of (partition, offset, key bytes or None, headers dict, value bytes or None)."""
    fmt = "%p\t%o\t%K\t%k%h\t%S\t%s"
    r = subprocess.run(["kcat", "-C", "-b", KAFKA, "-t", topic, "-o", "beginning",
                        "-e", "-q", "-f", fmt], capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"kcat -C {topic}: {r.stderr.decode(errors='replace')}")
    data = r.stdout
    out = []
    pos = 0

    def field(sep=b"\t"):
        nonlocal pos
        end = data.index(sep, pos)
        v = data[pos:end]
        pos = end + len(sep)
        return v
    while pos < len(data):
        part = int(field())
        off = int(field())
        klen = int(field())
        key = None
        if klen >= 0:
            key = data[pos:pos + klen]
            pos += klen
        hdr_text = field().decode("utf-8", "replace")
        vlen = int(field())
        value = None
        if vlen >= 0:
            value = data[pos:pos + vlen]
            pos += vlen
        headers = {}
        if hdr_text:
            for item in hdr_text.split(","):
                k, _, v = item.partition("=")
                headers[k] = v
        out.append((part, off, key, headers, value))
    return out


def produce_raw(topic, value, headers=(), key=None, timeout=60):
    """One record written with kcat, value bytes exactly as given."""
    argv = ["kcat", "-P", "-b", KAFKA, "-t", topic, "-X", "acks=all"]
    for k, v in headers:
        argv += ["-H", f"{k}={v}"]
    if key is not None:
        argv += ["-k", key]
    # -D with a delimiter that cannot occur keeps the value one record.
    argv += ["-D", "\x1e\x1f\x1e"]
    r = subprocess.run(argv, input=value, capture_output=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"kcat -P {topic}: {r.stderr.decode(errors='replace')}")


class MsgpackError(ValueError):
    pass


def msgpack_decode(data):
    """A minimal msgpack decoder (maps, arrays, str, bin, ints, floats,
    nil, bool); enough for Omnify's message bodies."""
    def dec(i):
        b = data[i]
        i += 1
        if b <= 0x7f:
            return b, i
        if 0x80 <= b <= 0x8f:
            return dec_map(b & 0x0f, i)
        if 0x90 <= b <= 0x9f:
            return dec_arr(b & 0x0f, i)
        if 0xa0 <= b <= 0xbf:
            n = b & 0x1f
            return data[i:i + n].decode("utf-8", "replace"), i + n
        if b >= 0xe0:
            return b - 0x100, i
        if b == 0xc0:
            return None, i
        if b == 0xc2:
            return False, i
        if b == 0xc3:
            return True, i
        if b in (0xc4, 0xc5, 0xc6):
            w = {0xc4: 1, 0xc5: 2, 0xc6: 4}[b]
            n = int.from_bytes(data[i:i + w], "big")
            i += w
            return bytes(data[i:i + n]), i + n
        if b == 0xca:
            return struct.unpack(">f", data[i:i + 4])[0], i + 4
        if b == 0xcb:
            return struct.unpack(">d", data[i:i + 8])[0], i + 8
        if b in (0xcc, 0xcd, 0xce, 0xcf):
            w = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[b]
            return int.from_bytes(data[i:i + w], "big"), i + w
        if b in (0xd0, 0xd1, 0xd2, 0xd3):
            w = {0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[b]
            return int.from_bytes(data[i:i + w], "big", signed=True), i + w
        if b in (0xd9, 0xda, 0xdb):
            w = {0xd9: 1, 0xda: 2, 0xdb: 4}[b]
            n = int.from_bytes(data[i:i + w], "big")
            i += w
            return data[i:i + n].decode("utf-8", "replace"), i + n
        if b in (0xdc, 0xdd):
            w = 2 if b == 0xdc else 4
            return dec_arr(int.from_bytes(data[i:i + w], "big"), i + w)
        if b in (0xde, 0xdf):
            w = 2 if b == 0xde else 4
            return dec_map(int.from_bytes(data[i:i + w], "big"), i + w)
        raise MsgpackError(f"unsupported msgpack byte 0x{b:02x}")

    def dec_map(n, i):
        out = {}
        for _ in range(n):
            k, i = dec(i)
            v, i = dec(i)
            out[k] = v
        return out, i

    def dec_arr(n, i):
        out = []
        for _ in range(n):
            v, i = dec(i)
            out.append(v)
        return out, i

    try:
        v, end = dec(0)
    except (IndexError, struct.error) as e:
        raise MsgpackError(str(e)) from e
    if end != len(data):
        raise MsgpackError("trailing bytes")
    return v


def msgpack_encode(obj):
    """Enough msgpack to write poison messages by hand."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj <= 0x7f:
            return bytes([obj])
        return b"\xd3" + obj.to_bytes(8, "big", signed=True)
    if isinstance(obj, str):
        b = obj.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xd9" + bytes([len(b)]) + b if len(b) < 256 else \
            b"\xda" + len(b).to_bytes(2, "big") + b
    if isinstance(obj, dict):
        assert len(obj) < 16
        return bytes([0x80 | len(obj)]) + b"".join(
            msgpack_encode(k) + msgpack_encode(v) for k, v in obj.items())
    if isinstance(obj, list):
        assert len(obj) < 16
        return bytes([0x90 | len(obj)]) + b"".join(msgpack_encode(v) for v in obj)
    raise TypeError(type(obj))


def uuid7():
    """A UUIDv7 in text form, as Omnify's message ids are."""
    ms = int(time.time() * 1000)
    rnd = int.from_bytes(os.urandom(10), "big")
    v = (ms << 80) | (0x7 << 76) | ((rnd >> 68) & 0xfff) << 64 | (0b10 << 62) | (rnd & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


# ---------------------------------------------------------------------------
# The books
# ---------------------------------------------------------------------------

def wait_mails(mail, emails, timeout=150.0, quiet_s=75.0):
    """Wait until every address got a mail, or no new mail came for
    quiet_s (a sender killed mid-send holds its mail's 60 s lease), or
    timeout. Returns {email: (distinct texts, mails)}."""
    deadline = time.monotonic() + timeout
    last_total, last_change = -1, time.monotonic()
    while True:
        counts = mail.count(emails)
        missing = sum(1 for d, n in counts.values() if d == 0)
        total = sum(n for d, n in counts.values())
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        if not missing or time.monotonic() > deadline or \
                time.monotonic() - last_change > quiet_s:
            return counts
        time.sleep(2.0)


def outbox_counts(db):
    """{recipient: mail records} in auth's outbox: the mails the handlers
    queued, whether or not a sender sent them yet."""
    st = Store()
    try:
        docs = st.find_all(db, "mail_outbox", {}, {"to": 1})
    finally:
        st.close()
    out = {}
    for d in docs:
        to = str(d.get("to", "")).lower()
        out[to] = out.get(to, 0) + 1
    return out


def verify(load, events_topic, mail=None, outbox_db=None, settle_s=3.0):
    """Count, for every accepted request, whether it completed once.

    Returns a dict with the numbers of the table and lists of evidence."""
    reqs = load.requests
    accepted = [r for r in reqs if r.op_id]
    # Events: count auth.user.registered per user_id; wait until the count
    # stops growing (a producer may still be sending the last ones).
    prev, records = -1, []
    for _ in range(10):
        records = read_topic(events_topic)
        if len(records) == prev:
            break
        prev = len(records)
        time.sleep(settle_s)
    # Per user: the distinct event ids (each is one registration: more than
    # one is the work done twice) and the records (a resend after a lost
    # delivery keeps the event id: a copy consumers drop by id, counted
    # apart).
    per_user = {}
    records_per_user = {}
    per_user_corr = {}
    undecodable = 0
    for part, off, key, headers, value in records:
        if headers.get("type") != "auth.user.registered":
            continue
        try:
            body = msgpack_decode(value or b"")
        except MsgpackError:
            undecodable += 1
            continue
        uid = body.get("user_id") if isinstance(body, dict) else None
        per_user.setdefault(uid, set()).add(headers.get("id"))
        records_per_user[uid] = records_per_user.get(uid, 0) + 1
        per_user_corr.setdefault(uid, []).append(
            (headers.get("id"), headers.get("correlation-id"), part, off))
    per_user = {u: len(ids) for u, ids in per_user.items()}
    copies = sum(n - per_user[u] for u, n in records_per_user.items())

    completed = [r for r in accepted if r.final == "completed"]
    unfinished = [r for r in accepted if r.final != "completed"]
    bad_result = [r for r in completed
                  if not (r.result and r.result[0] == 201 and r.user_id)]
    wrong_email = [r for r in completed if r.result and r.result[0] == 201
                   and isinstance(r.result[1], dict)
                   and (r.result[1].get("email") or "").lower() != r.email.lower()]
    no_event = [r for r in completed if r.user_id and per_user.get(r.user_id, 0) == 0]
    dup_event = [r for r in completed if r.user_id and per_user.get(r.user_id, 0) > 1]
    ours = {r.user_id for r in completed if r.user_id}
    orphans = {u: n for u, n in per_user.items() if u not in ours}
    same_user = {}
    for r in completed:
        if r.user_id:
            same_user.setdefault(r.user_id, []).append(r)
    shared_user = [rs for rs in same_user.values() if len(rs) > 1]
    multi_202 = [r for r in accepted if len(r.all_ops) > 1]
    # The verification mail, where the user would receive it.
    ok201 = [r for r in completed if r.result and r.result[0] == 201]
    no_mail, dup_mail, mail_copies, mail_copy_emails = [], [], 0, []
    if mail is not None and ok201:
        counts = wait_mails(mail, [r.email for r in ok201])
        for r in ok201:
            distinct, n = counts[r.email]
            if distinct == 0:
                no_mail.append(r)
            elif distinct > 1:
                dup_mail.append(r)
            mail_copies += n - distinct
            if n > distinct:
                mail_copy_emails.append(r.email)
    # The outbox: one verification mail queued per signup.
    no_outbox, dup_outbox = [], []
    if outbox_db:
        counts = outbox_counts(outbox_db)
        for r in ok201:
            n = counts.get(r.email.lower(), 0)
            if n == 0:
                no_outbox.append(r)
            elif n > 1:
                dup_outbox.append(r)
    lost = set(id(r) for r in unfinished + bad_result + no_event + wrong_email + no_mail
               + no_outbox)
    dup = set(id(r) for r in dup_event + dup_mail + dup_outbox)
    for rs in shared_user:
        for r in rs:
            dup.add(id(r))
    return {
        "sent": load.sent,
        "accepted": len(accepted),
        "not_accepted": [r for r in reqs if not r.op_id],
        "completed": len(completed),
        "lost": len(lost),
        "duplicated": len(dup),
        "unfinished": unfinished,
        "bad_result": bad_result,
        "wrong_email": wrong_email,
        "no_event": no_event,
        "dup_event": dup_event,
        "no_mail": no_mail,
        "dup_mail": dup_mail,
        "mail_copies": mail_copies,
        "mail_copy_emails": mail_copy_emails,
        "mails_checked": mail is not None,
        "no_outbox": no_outbox,
        "dup_outbox": dup_outbox,
        "per_user_corr": per_user_corr,
        "orphan_events": orphans,
        "shared_user": shared_user,
        "multi_202": multi_202,
        "events_total": sum(per_user.values()),
        "event_copies": copies,
        "undecodable_events": undecodable,
        "http_attempts": load.http_attempts,
        "retries": load.retries,
    }
