"""Shared helpers and fixtures of the deployment tests (tests/deploy); the
test modules import what they use from here. There is deliberately no
conftest.py: tests/integration imports its helpers from a module named
conftest, and a second one would shadow it when both directories are
collected in one pytest run.

No Docker engine and no Kubernetes cluster run on the test machines, so the
Dockerfile, the docker compose files and the Kubernetes manifests are proven
another way: validated offline (Debian's docker-compose, kustomize and
kubernetes-validate through k8s/tools), checked against each other and against
the code (settings table, topics file, ops ports, CMake's binaries), and the
compose files' own services are run as plain processes against the local
broker and store.

Sources of truth read here, never typed again:
- groups and partitions: schemas/topics.json
- ops port of a group: `.ops_port = N` in consumers/<group>/*.c
- settings: `build/bin/omnify settings --markdown`
- binaries: build/bin/ (CMake)
"""

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("OMNIFY_BIN_DIR", os.path.join(REPO, "build", "bin"))
LOCAL = os.environ.get("OMNIFY_LOCAL_DIR", os.path.join(REPO, ".local"))
K8S_TOOLS = os.path.join(REPO, "k8s", "tools")
COMPOSE_DIR = os.path.join(REPO, "compose")
MODES = ["monolith", "microservices", "hybrid"]
COMPOSE_FILES = {m: os.path.join(COMPOSE_DIR, f"docker-compose.{m}.yml") for m in MODES}
OVERLAYS = {m: os.path.join(REPO, "k8s", "overlays", m) for m in MODES}

# Binaries in build/bin that are build and test tools, not deployed (the
# build runs omnify-schemacheck over schemas/; the edge tests run
# omnify-edge-fixture). Anything else named omnify* must be
# deployed somewhere.
BUILD_TOOLS = {"omnify-schemacheck", "omnify-edge-fixture"}

# A signing key for the tests only (>= 32 bytes).
TEST_JWT_SECRET = "deploy-tests-" + "0123456789abcdef" * 3


# ---------------------------------------------------------------------------
# YAML: PyYAML from Debian (python3-yaml) or pip; else the validator venv's.
# ---------------------------------------------------------------------------

def _import_yaml():
    try:
        import yaml  # noqa: F401
        return yaml
    except ImportError:
        pass
    subprocess.run([K8S_TOOLS, "install"], check=True)
    site = glob.glob(os.path.join(LOCAL, "venv", "lib", "python3*", "site-packages"))
    sys.path.extend(site)
    import yaml
    return yaml


yaml = _import_yaml()


# ---------------------------------------------------------------------------
# Sources of truth
# ---------------------------------------------------------------------------

def load_topics():
    with open(os.path.join(REPO, "schemas", "topics.json")) as f:
        return {t["name"]: t for t in json.load(f)["topics"]}


TOPICS = load_topics()
GROUPS = [n[: -len(".commands")] for n in TOPICS if n.endswith(".commands")]


def ops_port_from_source(group):
    for path in sorted(glob.glob(os.path.join(REPO, "consumers", group, "*.c"))):
        with open(path) as f:
            m = re.search(r"\.ops_port\s*=\s*(\d+)", f.read())
        if m:
            return int(m.group(1))
    raise AssertionError(f"no .ops_port in consumers/{group}/*.c")


OPS_PORTS = {g: ops_port_from_source(g) for g in GROUPS}
EDGE_PORT = 8000


def cmake_version():
    with open(os.path.join(REPO, "CMakeLists.txt")) as f:
        return re.search(r"project\(omnify VERSION ([0-9.]+)", f.read()).group(1)


def ensure_built(names):
    """Build with compose/local/build when a binary is missing."""
    missing = [n for n in names if not os.access(os.path.join(BIN, n), os.X_OK)]
    if missing:
        subprocess.run([os.path.join(REPO, "compose", "local", "build")], check=True,
                       stdout=subprocess.DEVNULL)


DEPLOYED_BINARIES = {"omnify", "omnify-edge"} | {f"omnify-{g}" for g in GROUPS}


def built_binaries():
    ensure_built(sorted(DEPLOYED_BINARIES))
    return {n for n in os.listdir(BIN)
            if os.access(os.path.join(BIN, n), os.X_OK) and os.path.isfile(os.path.join(BIN, n))}


def _split_md_row(line):
    """Cells of a markdown table row; `\\|` is a literal bar."""
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    return [c.replace("\\|", "|").strip() for c in re.split(r"(?<!\\)\|", line)]


_settings_cache = None


def settings_table():
    """{variable: {"default":…, "read_by": {"all"|"edge"|"groups"|"auth"}, "required": bool}}
    from `omnify settings --markdown`."""
    global _settings_cache
    if _settings_cache is None:
        ensure_built(["omnify"])
        out = subprocess.run([os.path.join(BIN, "omnify"), "settings", "--markdown"],
                             check=True, capture_output=True, text=True).stdout
        rows = [line for line in out.splitlines() if line.startswith("|")]
        header = [c.lower() for c in _split_md_row(rows[0])]
        table = {}
        for line in rows[2:]:
            cells = dict(zip(header, _split_md_row(line)))
            var = cells["variable"].strip("`")
            table[var] = {
                "default": cells["default"],
                "read_by": {s.strip() for s in cells["read by"].split(",")},
                "required": "required" in cells["default"],
            }
        assert "OMNIFY_KAFKA_BROKERS" in table, out
        _settings_cache = table
    return _settings_cache


def reads(binary_argv, variable):
    """Does the process started with this argv read this setting?"""
    read_by = settings_table()[variable]["read_by"]
    if "all" in read_by:
        return True
    groups = groups_of_command(binary_argv)
    is_edge = binary_argv[0] == "omnify-edge" or binary_argv[:2] == ["omnify", "monolith"]
    if is_edge and "edge" in read_by:
        return True
    if groups and "groups" in read_by:
        return True
    return bool(set(groups) & read_by)


def groups_of_command(argv):
    """The groups a process runs, from its argv: omnify-<g>, or
    omnify monolith [--only a,b] [--except c,d]."""
    if not argv:
        return []
    name = os.path.basename(argv[0])
    if name.startswith("omnify-") and name[len("omnify-"):] in GROUPS:
        return [name[len("omnify-"):]]
    if name == "omnify" and len(argv) > 1 and argv[1] == "monolith":
        only, exclude = None, set()
        args = list(argv[2:])
        i = 0
        while i < len(args):
            a = args[i]
            key, _, val = a.partition("=")
            if key in ("--only", "--except"):
                if not val:
                    i += 1
                    val = args[i]
                names = set(val.split(","))
                if key == "--only":
                    only = names
                else:
                    exclude |= names
            i += 1
        return [g for g in GROUPS if (only is None or g in only) and g not in exclude]
    return []


# ---------------------------------------------------------------------------
# docker compose files: PyYAML (anchors and merge keys) plus compose's
# variable interpolation.
# ---------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^}])*))?\}"
                  r"|([A-Za-z_][A-Za-z0-9_]*))")


class InterpolationError(Exception):
    pass


def interpolate(value, env):
    """Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d},
    ${VAR:?err}, ${VAR?err}."""
    def sub(m):
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4)
        val = env.get(name)
        if op == ":-":
            return val if val else arg
        if op == "-":
            return val if val is not None else arg
        if op == ":?":
            if not val:
                raise InterpolationError(f"{name}: {arg}")
            return val
        if op == "?":
            if val is None:
                raise InterpolationError(f"{name}: {arg}")
            return val
        return val or ""
    return _VAR.sub(sub, value)


def _interp_tree(node, env):
    if isinstance(node, dict):
        return {k: _interp_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interp_tree(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def load_compose(mode_or_path, env=None):
    """The compose file as a dict, anchors merged, variables interpolated
    (from env, default: OMNIFY_JWT_SECRET set to the tests' key)."""
    path = COMPOSE_FILES.get(mode_or_path, mode_or_path)
    with open(path) as f:
        doc = yaml.safe_load(f)
    if env is None:
        env = {"OMNIFY_JWT_SECRET": TEST_JWT_SECRET}
    return _interp_tree(doc, env)


def compose_command(svc):
    cmd = svc.get("command")
    if isinstance(cmd, str):
        import shlex
        cmd = shlex.split(cmd)
    return list(cmd or [])


def compose_env(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def omnify_services(compose):
    """Services that run an Omnify binary."""
    return {name: svc for name, svc in compose["services"].items()
            if compose_command(svc) and compose_command(svc)[0] in DEPLOYED_BINARIES}


def healthcheck_url(svc):
    test = (svc.get("healthcheck") or {}).get("test") or []
    urls = [t for t in test if isinstance(t, str) and t.startswith("http://")]
    return urls[0] if urls else None


# ---------------------------------------------------------------------------
# Kubernetes: rendered overlays (session-wide, rendered once)
# ---------------------------------------------------------------------------

_rendered = {}


def render_overlay(mode):
    if mode not in _rendered:
        out = subprocess.run([K8S_TOOLS, "kustomize", OVERLAYS[mode]], check=True,
                             capture_output=True, text=True).stdout
        _rendered[mode] = (out, [d for d in yaml.safe_load_all(out) if d])
    return _rendered[mode]


def validate_rendered(tools, text, docs, path):
    """Write rendered manifests to path and validate them with k8s/tools:
    every document counted, no error. Returns the validator's report."""
    path.write_text(text)
    r = subprocess.run([tools, "validate", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout
    assert f"validated {len(docs)} documents" in r.stdout
    assert ": 0 errors" in r.stdout
    return r.stdout


def docs_of(mode, kind=None):
    docs = render_overlay(mode)[1]
    return [d for d in docs if kind is None or d["kind"] == kind]


def doc_named(mode, kind, name):
    found = [d for d in docs_of(mode, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{mode}: {kind}/{name}: found {len(found)}"
    return found[0]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "DaemonSet")


def pod_templates(mode):
    """(doc, pod template) of every workload."""
    return [(d, d["spec"]["template"]) for d in docs_of(mode) if d["kind"] in WORKLOAD_KINDS]


def container_argv(c):
    return list(c.get("command") or []) + list(c.get("args") or [])


def port_number(container, port):
    """A probe's port (number or name) as a number."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError(f"container {container['name']} has no port named {port}")


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


# ---------------------------------------------------------------------------
# Local infrastructure
# ---------------------------------------------------------------------------

KAFKA_ADDR = "{}:{}".format(os.environ.get("OMNIFY_INFRA_KAFKA_HOST", "127.0.0.1"),
                            os.environ.get("OMNIFY_INFRA_KAFKA_PORT", "9092"))
STORE_ADDR = "{}:{}".format(os.environ.get("OMNIFY_INFRA_STORE_HOST", "127.0.0.1"),
                            os.environ.get("OMNIFY_INFRA_STORE_PORT", "27017"))


def reachable(addr):
    host, _, port = addr.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def kafka_pid():
    """The pid of the local broker (compose/local/infra), or None."""
    try:
        with open(os.path.join(LOCAL, "run", "kafka.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


KAFKA_JARS = os.path.join(LOCAL, "jars", "kafka", "lib")
DELETE_TOPICS_JAVA = os.path.join(REPO, "tests", "deploy", "kafka", "DeleteTopics.java")


def delete_topics(prefixes, bootstrap):
    """Delete the topics under these prefixes (tests create many topics, and a
    shared local broker slows down with every partition). Uses the broker's
    own kafka-clients jar (compose/local/infra resolved it) through a
    single-file Java program. Returns None, or why it could not."""
    java = shutil.which("java")
    if not java or not os.path.isdir(KAFKA_JARS):
        return f"no java or no {KAFKA_JARS}"
    argv = [java, "-Dlog4j2.level=warn", "-cp", os.path.join(KAFKA_JARS, "*"),
            DELETE_TOPICS_JAVA, bootstrap] + [re.escape(p) for p in prefixes]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        return "timed out"
    if r.returncode != 0:
        return (r.stderr or r.stdout)[-2000:]
    return None


# ---------------------------------------------------------------------------
# Fixtures (imported by the test modules that use them)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def infra():
    """Kafka and the store on this machine (compose/local/infra up when
    either does not answer)."""
    if not (reachable(KAFKA_ADDR) and reachable(STORE_ADDR)):
        subprocess.run([os.path.join(REPO, "compose", "local", "infra"), "up"], check=True)
    return {"kafka": KAFKA_ADDR, "store": STORE_ADDR}


@pytest.fixture(scope="session")
def k8s_tools():
    """The validator venv and a kustomize (k8s/tools install, idempotent)."""
    subprocess.run([K8S_TOOLS, "install"], check=True)
    return K8S_TOOLS


@pytest.fixture(scope="session")
def docker_compose():
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is missing: compose/local/deps installs Debian's "
                    "docker-compose (apt-get install docker-compose)")
    return exe


@pytest.fixture(scope="session")
def topic_prefixes(infra):
    """Topic prefixes the tests used; their topics are deleted at the end."""
    used = []
    yield used
    if used:
        why = delete_topics(used, infra["kafka"])
        if why:
            import warnings
            warnings.warn(f"could not delete the test topics under {used}: {why}")
