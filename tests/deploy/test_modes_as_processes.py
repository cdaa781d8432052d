"""Each compose file run as plain processes on this machine (no Docker engine
here): the file's own Omnify services, with their commands and environments
as the file gives them, against the local broker and store instead of the
`kafka` and `mongodb` containers. The one-shot services (`topics`) run first
and must succeed, as `service_completed_successfully` demands; then every
service must pass its own health check command (`omnify probe ...`), and
GET /api/<group>/status must answer, for all seven groups, from the process
and in the mode the file says. Finally every process stops gracefully on
SIGTERM within the file's stop_grace_period. A process that exits early is
restarted as Docker would by the service's restart policy (bounded), and the
test warns about it.

Only what one host forces is changed: the compose hostnames kafka:9092 and
mongodb:27017 become the local addresses, each service listens on a free
port instead of its container port (all run on one host), and each test
uses its own topic and database prefix (its topics are deleted afterwards)."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import time
import uuid
import warnings

import pytest

from deploylib import (BIN, GROUPS, MODES, OPS_PORTS, compose_command, compose_env,
                       ensure_built, groups_of_command, healthcheck_url, kafka_pid,
                       load_compose, omnify_services)
from deploylib import infra, topic_prefixes  # noqa: F401  (fixtures)


def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in range(8000, 8008):
            return port


def get(port, path, timeout=10.0, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        try:
            body = json.loads(body)
        except ValueError:
            pass
        return r.status, body
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        conn.close()


def serves_http(argv):
    return argv[0] == "omnify-edge" or argv[:2] == ["omnify", "monolith"]


def seconds(text, default=10):
    if not text:
        return default
    m = re.fullmatch(r"(\d+)(ms|s|m)?", str(text))
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n / 1000 if unit == "ms" else n * 60 if unit == "m" else n


class Service:
    def __init__(self, name, svc, env, port, logdir):
        self.name = name
        self.svc = svc
        self.argv = compose_command(svc)
        self.env = env
        self.port = port
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.proc = None
        self.groups = groups_of_command(self.argv)
        self.restarts = []
        self.next_start = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([os.path.join(BIN, self.argv[0])] + self.argv[1:],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    # Docker's restart policies, as the daemon applies them to a container
    # whose process exited: restart after 0.1 s, doubling.
    MAX_RESTARTS = 5

    def check_restart(self):
        """None while running; True when restarted or waiting to; False when
        it exited for good (policy "no", or too many restarts)."""
        if self.proc is None or self.proc.poll() is None:
            return None
        if self.next_start is None:
            policy = self.svc.get("restart", "no")
            allowed = policy in ("always", "unless-stopped") or (
                policy.startswith("on-failure") and self.proc.returncode != 0)
            if not allowed or len(self.restarts) >= self.MAX_RESTARTS:
                return False
            self.restarts.append(self.proc.returncode)
            self.next_start = time.monotonic() + 0.1 * 2 ** (len(self.restarts) - 1)
        if time.monotonic() >= self.next_start:
            self.log.close()
            self.next_start = None
            self.start()
        return True

    def run_once(self, timeout=60):
        with open(self.log_path, "wb") as log:
            return subprocess.run([os.path.join(BIN, self.argv[0])] + self.argv[1:],
                                  env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode

    def tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} ({' '.join(self.argv)}):\n" + "\n".join(lines[-n:])

    def healthcheck(self):
        """The service's own health check command, on this host's port."""
        test = list(self.svc["healthcheck"]["test"])
        assert test[0] == "CMD", test
        cmd = test[1:]
        if cmd[0] == "omnify":
            cmd[0] = os.path.join(BIN, "omnify")
        cmd = [re.sub(r"^http://127\.0\.0\.1:\d+/", f"http://127.0.0.1:{self.port}/", c)
               for c in cmd]
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode


def plan(mode, infra, logdir):
    """The services of the compose file as processes of this host."""
    compose = load_compose(mode)
    services = omnify_services(compose)
    run = uuid.uuid4().hex[:10]
    # Compose hostnames -> this host's broker and store.
    hosts = {"kafka:9092": infra["kafka"], "mongodb:27017": infra["store"]}
    base = {k: v for k, v in os.environ.items() if not k.startswith("OMNIFY_")}
    out = {}
    for name, svc in services.items():
        env = dict(base)
        for k, v in compose_env(svc).items():
            for a, b in hosts.items():
                v = v.replace(a, b)
            env[k] = v
        assert "kafka:" not in env["OMNIFY_KAFKA_BROKERS"]
        assert not re.search(r"[/@]mongodb[:/]", env["OMNIFY_MONGO_URI"])
        env["OMNIFY_TOPIC_PREFIX"] = f"deploy-{mode}-{run}."
        env["OMNIFY_MONGO_DB_PREFIX"] = f"dp{run}_"
        argv = compose_command(svc)
        port = None
        if healthcheck_url(svc):
            port = free_port()
            if serves_http(argv):
                env["OMNIFY_HTTP_PORT"] = str(port)
            else:
                env["OMNIFY_OPS_PORT"] = str(port)
        out[name] = Service(name, svc, env, port, logdir)
    one_shots = {dep for svc in services.values()
                 for dep, cond in (svc.get("depends_on") or {}).items()
                 if cond.get("condition") == "service_completed_successfully"}
    return out, one_shots


_broker_at_start = [None]


def broker_note():
    """Other work on this machine may restart the shared local broker; say so
    when it happened during the test."""
    now = kafka_pid()
    if now != _broker_at_start[0]:
        return (f"\nNOTE: the local Kafka broker restarted during this test (pid "
                f"{_broker_at_start[0]} -> {now}); topics created before that may be gone.")
    return ""


def wait_for(what, check, timeout, services):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for s in services:
            if s.check_restart() is False:
                pytest.fail(f"{s.name} exited with {s.proc.returncode} while waiting for "
                            f"{what} (restarts before: {s.restarts})\n" + s.tail(30)
                            + broker_note())
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}\n" + "\n".join(s.tail() for s in services)
                + broker_note())


@pytest.mark.parametrize("mode", MODES)
def test_mode_runs_from_its_compose_file(mode, infra, topic_prefixes, tmp_path):
    ensure_built(["omnify", "omnify-edge"] + [f"omnify-{g}" for g in GROUPS])
    services, one_shots = plan(mode, infra, str(tmp_path))
    topic_prefixes.append(services["topics"].env["OMNIFY_TOPIC_PREFIX"])
    assert one_shots == {"topics"}
    long_running = [s for n, s in services.items() if n not in one_shots]
    _broker_at_start[0] = kafka_pid()
    try:
        # 1. The one-shot jobs, to completion.
        for name in sorted(one_shots):
            rc = services[name].run_once()
            assert rc == 0, services[name].tail(30) + broker_note()

        # 2. The services, all at once as compose starts them once their
        #    dependencies are met; each passes its own health check.
        for s in long_running:
            s.start()
        for s in long_running:
            wait_for(f"{s.name}'s health check", lambda s=s: s.healthcheck() == 0, 60,
                     long_running)

        # 3. Readiness: the API on the edge (or monolith), ops of the groups.
        (api,) = [s for s in long_running if serves_http(s.argv)]
        wait_for("the API's /ready", lambda: get(api.port, "/ready")[0] == 200, 60,
                 long_running)
        for s in long_running:
            if s is api:
                for g in GROUPS:
                    want = 200 if g in s.groups else 404
                    wait_for(f"{s.name} /ops/{g}/ready = {want}",
                             lambda g=g, want=want: get(s.port, f"/ops/{g}/ready")[0] == want,
                             60, long_running)
            else:
                wait_for(f"{s.name} /ready", lambda s=s: get(s.port, "/ready")[0] == 200, 60,
                         long_running)

        # 4. Every group answers through the API from the process the file
        #    says, in its mode.
        for g in GROUPS:
            (owner,) = [s for s in long_running if g in s.groups]
            expected_mode = "monolith" if owner.argv[:2] == ["omnify", "monolith"] else "standalone"

            def status(g=g):
                code, body = get(api.port, f"/api/{g}/status", timeout=15,
                                 headers={"Prefer": "wait=5"})
                return body if code == 200 else None
            body = wait_for(f"GET /api/{g}/status", status, 60, long_running)
            assert body["group"] == g
            assert body["pid"] == owner.proc.pid, (g, owner.name, body)
            assert body["mode"] == expected_mode, (g, owner.name, body)
    finally:
        # Restarts (by the file's restart policy) are allowed, as Docker
        # would do them, but reported.
        for s in long_running:
            if s.restarts:
                warnings.warn(f"{mode}: {s.name} exited {s.restarts} and was restarted by "
                              f"its restart policy ({s.svc.get('restart')})\n" + s.tail(8))
        # 5. SIGTERM, as `docker compose stop` sends; each must exit 0 within
        #    the file's stop_grace_period.
        running = [s for s in long_running if s.proc and s.proc.poll() is None]
        for s in running:
            s.proc.send_signal(signal.SIGTERM)
        codes = {}
        for s in long_running:
            if s not in running:
                if s.proc:
                    s.log.close()
                continue
            try:
                codes[s.name] = s.proc.wait(timeout=seconds(s.svc.get("stop_grace_period")))
            except subprocess.TimeoutExpired:
                os.killpg(s.proc.pid, signal.SIGKILL)
                s.proc.wait()
                codes[s.name] = "killed after stop_grace_period"
            s.log.close()
    bad = {n: c for n, c in codes.items() if c != 0}
    assert not bad, f"not a graceful stop: {bad}\n" + "\n".join(
        services[n].tail() for n in bad)


def test_plan_maps_only_what_one_host_forces(tmp_path):
    """Apart from addresses, ports and prefixes, the processes get exactly
    the compose file's environment."""
    infra = {"kafka": "127.0.0.1:9092", "store": "127.0.0.1:27017"}
    for mode in MODES:
        services, _ = plan(mode, infra, str(tmp_path))
        for name, s in services.items():
            given = {k: v for k, v in s.env.items() if k.startswith("OMNIFY_")}
            declared = compose_env(load_compose(mode)["services"][name])
            changed = {k for k in given if declared.get(k) != given[k]}
            assert changed <= {"OMNIFY_KAFKA_BROKERS", "OMNIFY_MONGO_URI", "OMNIFY_TOPIC_PREFIX",
                               "OMNIFY_MONGO_DB_PREFIX", "OMNIFY_HTTP_PORT", "OMNIFY_OPS_PORT"}
            assert given["OMNIFY_KAFKA_BROKERS"] == "127.0.0.1:9092"
            assert given["OMNIFY_MONGO_URI"] == "mongodb://127.0.0.1:27017"
            if s.groups and not serves_http(s.argv):
                port = OPS_PORTS[s.groups[0]]
                assert s.svc["healthcheck"]["test"][-1].endswith(f":{port}/health")
