"""Shared fixtures and helpers of the Omnify integration tests.

The tests drive the real binaries (build/bin/) against the real broker
(127.0.0.1:9092) and store (127.0.0.1:27017) that `compose/local/infra up`
starts, over HTTP, as a client would. Python standard library only.

Every test session uses its own topic prefix and database prefix, so runs
never see each other's messages or data. Every process a test starts logs
its JSON lines to its own file under the session's temp dir; when a test
fails, the tails of the logs of the processes it used are attached to the
failure report.
"""

import atexit
import base64
import hashlib
import hmac
import http.client as httpclient
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_BIN = os.environ.get("OMNIFY_BIN_DIR", os.path.join(REPO, "build", "bin"))
# The session copies the binaries here first, so a rebuild while the tests
# run cannot swap or remove a binary under them.
BIN = BUILD_BIN
INFRA = os.path.join(REPO, "compose", "local", "infra")

GROUPS = ["auth", "integrations", "agentkit", "analytics", "onboarding", "ml",
          "infrastructure"]
GROUP_BINARIES = ["omnify-" + g for g in GROUPS]
ALL_BINARIES = ["omnify-edge"] + GROUP_BINARIES + ["omnify"]

# Light argon2 parameters for tests that only need many accounts quickly.
LOW_ARGON2 = {"OMNIFY_ARGON2_M_COST_KIB": "1024", "OMNIFY_ARGON2_T_COST": "1"}

HOST = "127.0.0.1"


def bin_path(name):
    return os.path.join(BIN, name)


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------

_given_ports = set()
_ports_lock = threading.Lock()


def free_port():
    """A TCP port nobody listens on now and that this session never handed
    out before (the kernel picks it; we only avoid giving it twice)."""
    with _ports_lock:
        for _ in range(100):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((HOST, 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in _given_ports and port not in range(8000, 8008):
                _given_ports.add(port)
                return port
    raise RuntimeError("no free port found")


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

class Response:
    """status, headers (case-insensitive .get), body (parsed JSON when the
    content type is JSON and it parses, else text), raw bytes, elapsed s."""

    def __init__(self, status, headers, raw, elapsed, method, url):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.elapsed = elapsed
        self.method = method
        self.url = url
        self.content_type = headers.get("Content-Type", "") or ""
        text = raw.decode("utf-8", "replace")
        self.body = text
        if "json" in self.content_type:
            try:
                self.body = json.loads(text)
            except ValueError:
                pass

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        body = self.raw[:600].decode("utf-8", "replace")
        return (f"<{self.method} {self.url} -> {self.status} "
                f"{self.content_type!r} {body!r} ({self.elapsed:.3f}s)>")


def http(method, url, body=None, headers=None, timeout=30.0, json_body=None,
         chunked=False, check_nosniff=True):
    """One request on a fresh connection. `url` is http://host:port/path.

    json_body: an object sent as application/json. body: bytes/str sent as
    is (no Content-Type unless given in headers). chunked: send body with
    Transfer-Encoding: chunked (no Content-Length).
    Returns a Response; raises on connection errors."""
    assert url.startswith("http://"), url
    hostport, _, path = url[len("http://"):].partition("/")
    path = "/" + path
    host, _, port = hostport.partition(":")
    hdrs = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = httpclient.HTTPConnection(host, int(port or 80), timeout=timeout)
    t0 = time.monotonic()
    try:
        if chunked:
            data = body or b""

            def pieces():
                for i in range(0, len(data), 1024):
                    yield data[i:i + 1024]
            conn.request(method, path, body=pieces(), headers=hdrs,
                         encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        elapsed = time.monotonic() - t0
        r = Response(resp.status, resp.headers, raw, elapsed, method, url)
    finally:
        conn.close()
    if check_nosniff:
        assert r.header("X-Content-Type-Options") == "nosniff", \
            f"response without X-Content-Type-Options: nosniff: {r!r} {dict(r.headers)}"
    return r


def try_http(method, url, **kw):
    """Like http() but None when the connection fails (not listening yet)."""
    try:
        return http(method, url, **kw)
    except (OSError, httpclient.HTTPException):
        return None


def assert_problem(r, status, fields=None):
    """r is an RFC 9457 problem with this status; when fields is given, the
    set of errors[].field equals it exactly."""
    assert r.status == status, r
    assert r.content_type.startswith("application/problem+json"), r
    assert isinstance(r.body, dict), r
    assert r.body.get("status") == status, r
    assert isinstance(r.body.get("title"), str) and r.body["title"], r
    assert "type" in r.body, r
    if fields is not None:
        errors = r.body.get("errors")
        assert isinstance(errors, list), f"no errors[] in {r!r}"
        named = {e.get("field") for e in errors}
        for e in errors:
            assert isinstance(e.get("reason"), str) and e["reason"], r
        assert named == set(fields), f"fields named {named}, expected {set(fields)}: {r!r}"
    return r.body


# ---------------------------------------------------------------------------
# JWT (HS256, crafted by hand)
# ---------------------------------------------------------------------------

def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(secret, claims=None, header=None, alg="HS256", sign=True):
    """A compact JWS. header defaults to {"alg":alg,"typ":"JWT","kid":"k1"};
    claims default to a valid omnify access token for random ids."""
    now = int(time.time())
    if header is None:
        header = {"alg": alg, "typ": "JWT", "kid": "k1"}
    if claims is None:
        claims = default_claims(now)
    head = b64url(json.dumps(header, separators=(",", ":")))
    body = b64url(json.dumps(claims, separators=(",", ":")))
    signing_input = f"{head}.{body}".encode()
    if not sign:
        return f"{head}.{body}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
              "HS512": hashlib.sha512}[alg]
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input, digest).digest()
    return f"{head}.{body}.{b64url(sig)}"


def default_claims(now=None, sub=None, tid=None, roles=("owner",)):
    now = int(time.time()) if now is None else now
    return {"iss": "omnify", "aud": "omnify-api",
            "sub": sub or str(uuid.uuid4()), "tid": tid or str(uuid.uuid4()),
            "roles": list(roles), "iat": now, "nbf": now, "exp": now + 600,
            "jti": str(uuid.uuid4())}


def decode_jwt(token):
    head, body, sig = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(body)), sig


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

_open_groups = []  # ProcessGroups whose fixtures are still active


@atexit.register
def _kill_leftovers():
    # Fixture teardown normally does this; this covers an interrupted run.
    for g in list(_open_groups):
        g.cleanup()

_failures = []  # node ids of failed tests: keep the logs then


class Proc:
    """One binary started with its own environment; stderr and stdout go
    to its log file."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=self._log,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self.returncode = None

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=30.0):
        """SIGTERM, then wait. Returns the exit status, or None if it had
        to be killed after `timeout` seconds."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
                self.returncode = None
                self._close()
                return None
        self.returncode = self.popen.returncode
        self._close()
        return self.returncode

    def kill(self):
        if self.popen.poll() is None:
            self.popen.kill()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._close()

    def _close(self):
        if not self._log.closed:
            self._log.close()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_lines(self):
        """The JSON log lines it wrote so far, parsed (others skipped)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def tail(self, n=40):
        lines = self.log_text().splitlines()
        return "\n".join(lines[-n:])


class ProcessGroup:
    """Processes that one fixture owns: all are killed at cleanup even when
    a test failed half way."""

    def __init__(self, session, label):
        self.session = session
        self.label = label
        self.procs = []

    def start(self, name, argv, env=None, **overrides):
        env = self.session.env(env, **overrides)
        log_path = os.path.join(self.session.tmpdir, f"{self.label}.{name}.{len(self.procs)}.log")
        p = Proc(name, argv, env, log_path)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in self.procs:
            p.kill()

    def tails(self, n=40):
        parts = []
        for p in self.procs:
            state = "running" if p.alive() else f"exited {p.popen.returncode}"
            parts.append(f"----- {p.name} (pid {p.pid}, {state}) {p.log_path}\n{p.tail(n)}")
        return "\n".join(parts)

    # -- the usual processes ------------------------------------------------

    def start_edge(self, name="edge", reply_partition=0, port=None, env=None,
                   wait=True, **overrides):
        port = port or free_port()
        p = self.start(name, [bin_path("omnify-edge")], env,
                       OMNIFY_HTTP_PORT=str(port), OMNIFY_HTTP_BIND=HOST,
                       OMNIFY_EDGE_REPLY_PARTITION=str(reply_partition), **overrides)
        p.port = port
        p.url = f"http://{HOST}:{port}"
        if wait:
            wait_ready(p, p.url + "/ready")
        return p

    def start_monolith(self, args=(), name="monolith", port=None, env=None,
                       wait=True, **overrides):
        port = port or free_port()
        p = self.start(name, [bin_path("omnify"), "monolith", *args], env,
                       OMNIFY_HTTP_PORT=str(port), OMNIFY_HTTP_BIND=HOST, **overrides)
        p.port = port
        p.url = f"http://{HOST}:{port}"
        if wait:
            wait_ready(p, p.url + "/ready")
        return p

    def start_group(self, group, ops_port=None, env=None, wait=True, **overrides):
        ops_port = ops_port or free_port()
        p = self.start(group, [bin_path("omnify-" + group)], env,
                       OMNIFY_OPS_PORT=str(ops_port), OMNIFY_OPS_BIND=HOST, **overrides)
        p.port = ops_port
        p.url = f"http://{HOST}:{ops_port}"
        if wait:
            wait_ready(p, p.url + "/ready")
        return p


def wait_ready(proc, url, timeout=45.0):
    """Poll url until 200, failing at once with the log tail if the
    process exits first."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(
                f"{proc.name} exited with {proc.popen.returncode} before {url} "
                f"answered 200; log:\n{proc.tail(60)}")
        last = try_http("GET", url, timeout=5)
        if last is not None and last.status == 200:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{url} not 200 after {timeout}s (last: {last!r}); "
                         f"{proc.name} log:\n{proc.tail(60)}")


def wait_status(base_url, group, timeout=45.0, expect_status=200):
    """GET /api/<group>/status until it answers 200 (the first request after
    a group starts may wait for the consumer-group join)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        left = max(1, min(5, int(deadline - time.monotonic())))
        last = try_http("GET", f"{base_url}/api/{group}/status",
                        headers={"Prefer": f"wait={left}"}, timeout=left + 10)
        if last is not None and last.status == expect_status:
            return last
        time.sleep(0.3)
    raise AssertionError(f"/api/{group}/status not {expect_status} after {timeout}s: {last!r}")


def wait_all_status(base_url, groups=GROUPS, timeout=60.0):
    """wait_status for several groups in parallel; returns {group: Response}."""
    results, errors = {}, {}

    def one(g):
        try:
            results[g] = wait_status(base_url, g, timeout=timeout)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors[g] = e
    threads = [threading.Thread(target=one, args=(g,)) for g in groups]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError("; ".join(f"{g}: {e}" for g, e in errors.items()))
    return results


def poll_operation(base_url, op_id, timeout=60.0, headers=None):
    """GET /api/operations/{id} until completed; returns the last Response."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = http("GET", f"{base_url}/api/operations/{op_id}", headers=headers)
        if last.status != 200:
            return last
        if isinstance(last.body, dict) and last.body.get("status") == "completed":
            return last
        time.sleep(0.3)
    return last


def binary_version():
    out = subprocess.run([bin_path("omnify"), "--version"], capture_output=True,
                         text=True, timeout=20)
    return out.stdout.strip().split()[-1]


def unique_email(tag="u"):
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def signup(base_url, email=None, password="correct horse battery", name="Test User",
           **kw):
    email = email or unique_email()
    r = http("POST", base_url + "/api/auth/signup",
             json_body={"email": email, "password": password, "name": name}, **kw)
    return email, r


def login(base_url, email, password, **kw):
    return http("POST", base_url + "/api/auth/login",
                json_body={"email": email, "password": password}, **kw)


def stop_all(procs, timeout=30.0):
    """SIGTERM every process at once and wait; {name: exit status}."""
    for p in procs:
        if p.alive():
            p.popen.send_signal(signal.SIGTERM)
    codes = {}
    for p in procs:
        codes[p.name] = p.stop(timeout=timeout)
    return codes


# ---------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------

# Settings taken from the caller's environment: to run the tests against
# another broker and store, e.g. an infra of their own started with
# OMNIFY_LOCAL_DIR=/tmp/x OMNIFY_INFRA_KAFKA_PORT=19092
# OMNIFY_INFRA_KAFKA_CONTROLLER_PORT=19093 OMNIFY_INFRA_STORE_PORT=27018
# compose/local/infra up (keep those variables set for the run: the Kafka-down
# test calls infra too) plus OMNIFY_KAFKA_BROKERS=127.0.0.1:19092
# OMNIFY_MONGO_URI=mongodb://127.0.0.1:27018.
PASS_THROUGH = {"OMNIFY_KAFKA_BROKERS", "OMNIFY_MONGO_URI"}


class Session:
    def __init__(self):
        tag = secrets.token_hex(3)
        self.tag = tag
        self.topic_prefix = f"it{tag}."
        self.db_prefix = f"it{tag}_"
        self.jwt_secret = secrets.token_urlsafe(48)
        self.tmpdir = tempfile.mkdtemp(prefix=f"omnify-it-{tag}-")

    def env(self, base=None, **overrides):
        """A clean environment: no OMNIFY_* from outside, the session's
        prefixes and secret, then `base`, then overrides (None deletes)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("OMNIFY_") or k in PASS_THROUGH}
        env.update({
            "OMNIFY_TOPIC_PREFIX": self.topic_prefix,
            "OMNIFY_MONGO_DB_PREFIX": self.db_prefix,
            "OMNIFY_JWT_SECRET": self.jwt_secret,
            "OMNIFY_LOG_LEVEL": "info",
            # Every test client comes from 127.0.0.1: the per-address and
            # per-account limits are lifted here, and the tests of the
            # limits themselves set them back.
            "OMNIFY_RATE_IP_PER_MIN": "1000000",
            "OMNIFY_RATE_ACCOUNT_PER_MIN": "1000000",
            # Sanitizer builds on two shared cores can take more than the
            # default 10 s for a first command while a group joins; tests
            # of the timeout itself bound it with Prefer: wait=N.
            "OMNIFY_REPLY_TIMEOUT_MS": "25000",
        })
        for src in (base or {}), overrides:
            for k, v in src.items():
                if v is None:
                    env.pop(k, None)
                else:
                    env[k] = str(v)
        return env

    def run(self, argv, env=None, timeout=60, **overrides):
        return subprocess.run(argv, env=self.env(env, **overrides), capture_output=True,
                              text=True, timeout=timeout)


def wait_topics_visible(s, timeout=30.0):
    """`topics apply` returns once the broker accepted the creation; the
    metadata that processes check at start-up can lag a moment behind."""
    deadline = time.monotonic() + timeout
    plan = None
    while time.monotonic() < deadline:
        plan = s.run([bin_path("omnify"), "topics", "plan"], timeout=60)
        if plan.returncode == 0 and "\n0 to create, 0 to grow" in "\n" + plan.stdout:
            # Visible is not yet led: give the partition leaders a moment, as
            # some start-up paths do not retry NOT_LEADER (see the report).
            time.sleep(3)
            return
        time.sleep(0.5)
    raise AssertionError(f"topics not visible {timeout}s after apply:\n{plan.stdout}\n{plan.stderr}")


def _infra_running():
    try:
        return subprocess.run([INFRA, "status"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def session():
    global BIN
    missing = [b for b in ALL_BINARIES
               if not os.access(os.path.join(BUILD_BIN, b), os.X_OK)]
    if missing:
        pytest.fail(f"binaries missing in {BUILD_BIN} (build first): {', '.join(missing)}",
                    pytrace=False)
    if not _infra_running():
        up = subprocess.run([INFRA, "up"], capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, f"compose/local/infra up failed:\n{up.stdout}\n{up.stderr}"
    s = Session()
    snapshot = os.path.join(s.tmpdir, "bin")
    os.makedirs(snapshot)
    for b in ALL_BINARIES:
        shutil.copy2(os.path.join(BUILD_BIN, b), os.path.join(snapshot, b))
    BIN = snapshot
    # The broker is shared: a restart by someone else may be under way.
    deadline = time.monotonic() + 180
    while True:
        r = s.run([bin_path("omnify"), "topics", "apply"], timeout=120)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert r.returncode == 0, f"omnify topics apply failed ({r.returncode}):\n{r.stdout}\n{r.stderr[-3000:]}"
    wait_topics_visible(s)
    print(f"\nintegration session {s.tag}: topics {s.topic_prefix}*, databases "
          f"{s.db_prefix}*, logs in {s.tmpdir}")
    yield s
    # The broker is shared and every partition costs it open files: take
    # this session's topics away again.
    s.run([bin_path("omnify"), "topics", "delete", s.topic_prefix], timeout=60)
    if os.environ.get("OMNIFY_IT_KEEP_LOGS") != "1" and not _failures:
        shutil.rmtree(s.tmpdir, ignore_errors=True)
    elif _failures:
        print(f"\nprocess logs kept in {s.tmpdir}")


def _process_group(request, session, label):
    g = ProcessGroup(session, label)
    _open_groups.append(g)
    try:
        yield g
    finally:
        g.cleanup()
        _open_groups.remove(g)


@pytest.fixture
def procs(request, session):
    """Processes owned by one test."""
    yield from _process_group(request, session, request.node.name.replace("/", "_")[:60])


@pytest.fixture(scope="module")
def module_procs(request, session):
    """Processes shared by the tests of one module."""
    yield from _process_group(request, session, request.module.__name__.rsplit(".", 1)[-1])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _failures.append(item.nodeid)
        text = "\n".join(g.tails() for g in _open_groups if g.procs)
        if text:
            rep.sections.append(("omnify process logs (tails)", text))
