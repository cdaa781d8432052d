"""The docker compose files: validated by Debian's docker-compose (1.29.2,
which knows the compose spec with `condition: service_completed_successfully`),
read back the way these tests read them, and checked for what each mode must
have."""

import copy
import os
import re
import subprocess

import pytest

from deploylib import (COMPOSE_FILES, EDGE_PORT, GROUPS, MODES, OPS_PORTS, REPO,
                       TEST_JWT_SECRET, InterpolationError, compose_command, compose_env,
                       groups_of_command, healthcheck_url, interpolate, load_compose,
                       omnify_services, settings_table, yaml)
from deploylib import docker_compose  # noqa: F401  (fixture)


def run_config(docker_compose, path, secret=TEST_JWT_SECRET, quiet=True):
    env = {k: v for k, v in os.environ.items() if k != "OMNIFY_JWT_SECRET"}
    if secret is not None:
        env["OMNIFY_JWT_SECRET"] = secret
    return subprocess.run([docker_compose, "-f", path, "config"] + (["-q"] if quiet else []),
                          env=env, capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("mode", MODES)
def test_docker_compose_validates(docker_compose, mode):
    r = run_config(docker_compose, COMPOSE_FILES[mode])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("mode", MODES)
def test_secret_is_required_not_stored(docker_compose, mode):
    """Without OMNIFY_JWT_SECRET compose refuses, naming it; the files hold no key."""
    r = run_config(docker_compose, COMPOSE_FILES[mode], secret=None)
    assert r.returncode != 0
    assert "set OMNIFY_JWT_SECRET" in r.stderr
    with open(COMPOSE_FILES[mode]) as f:
        text = f.read()
    assert re.findall(r"OMNIFY_JWT_SECRET:\s*(\S+)", text) == [
        "${OMNIFY_JWT_SECRET:?set"]


def test_validator_rejects_a_broken_file(docker_compose, tmp_path):
    """docker-compose config really validates: an unknown key and a bad
    depends_on condition are refused."""
    with open(COMPOSE_FILES["hybrid"]) as f:
        good = yaml.safe_load(f)
    for breakage in ("key", "condition"):
        doc = copy.deepcopy(good)
        svc = doc["services"]["omnify-ml"]
        if breakage == "key":
            svc["helthcheck"] = svc.pop("healthcheck")
        else:
            svc["depends_on"] = {"topics": {"condition": "service_finished"}}
        path = tmp_path / f"broken-{breakage}.yml"
        path.write_text(yaml.safe_dump(doc))
        r = run_config(docker_compose, str(path))
        assert r.returncode != 0, breakage
        assert "invalid" in r.stderr.lower() or "unsupported" in r.stderr.lower(), r.stderr


@pytest.mark.parametrize("mode", MODES)
def test_tests_read_the_files_as_docker_compose_does(docker_compose, mode):
    """The reader the process tests use (PyYAML + interpolation) gives the
    same commands and environments as `docker-compose config`."""
    r = run_config(docker_compose, COMPOSE_FILES[mode], quiet=False)
    assert r.returncode == 0, r.stderr
    theirs = yaml.safe_load(r.stdout)["services"]
    ours = load_compose(mode)["services"]
    assert set(theirs) == set(ours)
    for name in ours:
        assert compose_command(ours[name]) == compose_command(theirs[name]), name
        assert compose_env(ours[name]) == compose_env(theirs[name]), name


def test_interpolation_rules():
    env = {"A": "a", "E": ""}
    assert interpolate("$$A ${A} $A ${B:-d} ${E:-d} ${E-d} ${B-d}", env) == "$A a a d d  d"
    with pytest.raises(InterpolationError):
        interpolate("${E:?need E}", env)
    with pytest.raises(InterpolationError):
        interpolate("${B?need B}", env)


def _infra(compose):
    return {k: compose["services"][k] for k in ("kafka", "mongodb", "topics")}


def test_infrastructure_is_the_same_in_every_file():
    first = _infra(load_compose(MODES[0]))
    for mode in MODES[1:]:
        assert _infra(load_compose(mode)) == first, mode


@pytest.mark.parametrize("mode", MODES)
def test_kafka_and_mongodb(mode):
    s = load_compose(mode)["services"]
    k = s["kafka"]
    env = compose_env(k)
    assert k["image"] == "apache/kafka:4.1.1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "1@kafka:9093"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
    assert "PLAINTEXT://:9092" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    assert env["CLUSTER_ID"]  # the image's KRaft start needs one
    for key, value in env.items():
        if key.endswith("REPLICATION_FACTOR") or key.endswith("MIN_ISR"):
            assert value == "1", key
    assert env["KAFKA_LOG_DIRS"] in [v.split(":", 1)[1] for v in k["volumes"]]
    assert "healthcheck" in k
    m = s["mongodb"]
    assert m["image"] == "mongo:7"
    assert "mongosh" in m["healthcheck"]["test"]


@pytest.mark.parametrize("mode", MODES)
def test_topics_job_and_dependencies(mode):
    s = load_compose(mode)["services"]
    topics = s["topics"]
    assert compose_command(topics) == ["omnify", "topics", "apply"]
    assert topics["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    assert topics["restart"] == "no"
    for name, svc in omnify_services(load_compose(mode)).items():
        if name == "topics":
            continue
        assert svc["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "mongodb": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }, name


@pytest.mark.parametrize("mode", MODES)
def test_every_service_is_checked_by_omnify_probe_on_its_own_port(mode):
    for name, svc in omnify_services(load_compose(mode)).items():
        if name == "topics":
            continue
        argv = compose_command(svc)
        test = svc["healthcheck"]["test"]
        assert test[:3] == ["CMD", "omnify", "probe"], name
        url = healthcheck_url(svc)
        groups = groups_of_command(argv)
        serves_http = argv[0] == "omnify-edge" or argv[:2] == ["omnify", "monolith"]
        port = EDGE_PORT if serves_http else OPS_PORTS[groups[0]]
        assert url == f"http://127.0.0.1:{port}/health", name
        published = [str(p) for p in svc.get("ports", [])] + [str(p) for p in svc.get("expose", [])]
        assert any(p.split(":")[-1] == str(port) for p in published), name


@pytest.mark.parametrize("mode", MODES)
def test_each_group_runs_in_exactly_one_service(mode):
    served = []
    for name, svc in omnify_services(load_compose(mode)).items():
        served += groups_of_command(compose_command(svc))
    assert sorted(served) == sorted(GROUPS)


def test_modes_have_the_processes_the_issue_names():
    def commands(mode):
        return sorted(compose_command(s) for n, s in omnify_services(load_compose(mode)).items()
                      if n != "topics")
    assert commands("monolith") == [["omnify", "monolith"]]
    assert commands("microservices") == sorted(
        [["omnify-edge"]] + [[f"omnify-{g}"] for g in GROUPS])
    assert commands("hybrid") == sorted([["omnify", "monolith", "--except", "integrations,ml"],
                                         ["omnify-integrations"], ["omnify-ml"]])


@pytest.mark.parametrize("mode", MODES)
def test_services_point_at_the_compose_infrastructure_and_build_the_image(mode):
    for name, svc in omnify_services(load_compose(mode)).items():
        env = compose_env(svc)
        assert env["OMNIFY_KAFKA_BROKERS"] == "kafka:9092", name
        assert env["OMNIFY_MONGO_URI"] == "mongodb://mongodb:27017", name
        build = svc["build"]
        context = os.path.normpath(os.path.join(os.path.dirname(COMPOSE_FILES[mode]),
                                                build["context"]))
        assert context == REPO and build["dockerfile"] == "Dockerfile", name
        # Read-only root, no capabilities, like the Kubernetes pods.
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"], name
        # Long enough for the graceful stop the binaries do on SIGTERM.
        grace = int(svc["stop_grace_period"].rstrip("s"))
        timeout_ms = int(env.get("OMNIFY_SHUTDOWN_TIMEOUT_MS") or
                         settings_table()["OMNIFY_SHUTDOWN_TIMEOUT_MS"]["default"])
        assert grace * 1000 > timeout_ms, name
