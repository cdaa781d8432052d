"""Start-up settings of every binary: --help, --version, invalid values exit
2 naming the variable, the secret is required where it is used only."""

import re

import pytest

from conftest import (ALL_BINARIES, GROUP_BINARIES, bin_path, binary_version, free_port,
                      http, wait_ready)

# Every program that loads settings, by label; argv() resolves the binary
# when the test runs (the session's copy of build/bin).
PROGRAMS = ["omnify-edge"] + GROUP_BINARIES + ["omnify monolith"]
HTTP_PROGRAMS = ["omnify-edge", "omnify monolith"]


def argv(label):
    if label == "omnify monolith":
        return [bin_path("omnify"), "monolith"]
    return [bin_path(label)]


def run(session, cmd, timeout=20, **env):
    # Free ports by default, so a program that wrongly starts never takes
    # 8000..8007 from someone else; subprocess.run kills it at the timeout.
    env.setdefault("OMNIFY_HTTP_PORT", str(free_port()))
    env.setdefault("OMNIFY_OPS_PORT", str(free_port()))
    return session.run(cmd, timeout=timeout, **env)


@pytest.mark.parametrize("name", ALL_BINARIES)
def test_help_exits_0(session, name):
    r = run(session, [bin_path(name), "--help"])
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert "Usage" in r.stdout or "usage" in r.stdout, r.stdout


@pytest.mark.parametrize("name", ALL_BINARIES)
def test_version_exits_0(session, name):
    r = run(session, [bin_path(name), "--version"])
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert re.search(r"\d+\.\d+\.\d+", r.stdout), r.stdout
    assert binary_version() in r.stdout


def test_monolith_help_lists_settings(session):
    r = run(session, [bin_path("omnify"), "monolith", "--help"])
    assert r.returncode == 0, r
    for var in ("OMNIFY_HTTP_PORT", "OMNIFY_JWT_SECRET", "OMNIFY_OPS_PORT",
                "OMNIFY_ARGON2_T_COST", "OMNIFY_LOG_LEVEL"):
        assert var in r.stdout, var


@pytest.mark.parametrize("label", HTTP_PROGRAMS)
@pytest.mark.parametrize("value", ["99999", "0", "abc", "80x", ""])
def test_invalid_http_port(session, label, value):
    r = run(session, argv(label), OMNIFY_HTTP_PORT=value)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_HTTP_PORT" in r.stderr, r.stderr


@pytest.mark.parametrize("label", HTTP_PROGRAMS)
def test_invalid_http_port_flag(session, label):
    r = run(session, argv(label) + ["--http-port=99999"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_HTTP_PORT" in r.stderr, r.stderr


@pytest.mark.parametrize("label", GROUP_BINARIES)
def test_invalid_ops_port(session, label):
    r = run(session, argv(label), OMNIFY_OPS_PORT="abc")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_OPS_PORT" in r.stderr, r.stderr


@pytest.mark.parametrize("label", PROGRAMS)
def test_invalid_log_level(session, label):
    r = run(session, argv(label), OMNIFY_LOG_LEVEL="loud")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_LOG_LEVEL" in r.stderr, r.stderr


@pytest.mark.parametrize("label", PROGRAMS)
def test_invalid_topic_prefix(session, label):
    r = run(session, argv(label), OMNIFY_TOPIC_PREFIX="bad/prefix")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_TOPIC_PREFIX" in r.stderr, r.stderr


def test_topics_tool_invalid_log_level(session):
    r = run(session, [bin_path("omnify"), "topics", "plan"], OMNIFY_LOG_LEVEL="loud")
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_LOG_LEVEL" in r.stderr, r.stderr


def test_unknown_option(session):
    r = run(session, [bin_path("omnify-edge"), "--no-such-option=1"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "no-such-option" in r.stderr, r.stderr


def test_monolith_unknown_group(session):
    r = run(session, [bin_path("omnify"), "monolith", "--only", "auth,nosuch"])
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "nosuch" in r.stderr, r.stderr


@pytest.mark.parametrize("label", ["omnify-edge", "omnify-auth", "omnify monolith"])
def test_jwt_secret_required(session, label):
    r = run(session, argv(label), OMNIFY_JWT_SECRET=None)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_JWT_SECRET" in r.stderr, r.stderr


@pytest.mark.parametrize("label", ["omnify-edge", "omnify-auth", "omnify monolith"])
def test_jwt_secret_too_short(session, label):
    r = run(session, argv(label), OMNIFY_JWT_SECRET="x" * 31)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "OMNIFY_JWT_SECRET" in r.stderr, r.stderr
    assert "x" * 31 not in r.stderr, "the secret is echoed on stderr"


def test_group_without_secret_starts(procs):
    p = procs.start_group("analytics", wait=False, OMNIFY_JWT_SECRET=None)
    wait_ready(p, p.url + "/health")
    h = http("GET", p.url + "/health")
    assert h.status == 200 and h.body.get("group") == "analytics", h
    wait_ready(p, p.url + "/ready")
    assert p.stop() == 0


def test_group_listens_on_configured_ops_port(procs):
    port = free_port()
    p = procs.start_group("onboarding", ops_port=port, wait=False)
    wait_ready(p, f"http://127.0.0.1:{port}/health")
    assert p.stop() == 0


def test_reply_partition_beyond_topic_refused(session):
    # edge.replies has 16 partitions: 16 does not exist. The edge must not
    # start (it would wait for replies nobody sends); it names the setting.
    r = run(session, [bin_path("omnify-edge")], timeout=60, OMNIFY_EDGE_REPLY_PARTITION="16")
    assert r.returncode != 0, (r.returncode, r.stderr)
    assert "OMNIFY_EDGE_REPLY_PARTITION" in r.stderr, r.stderr
