"""Consistency of the deployment files with the code and with each other:
every group has its Deployment and ScaledObject (replica cap = partitions of
its commands topic), probes point at the ports and paths the binaries serve,
every OMNIFY_* variable set is one the settings table knows (and one the
process reads), the binaries referenced are the ones CMake builds, and the
security settings hold for every pod."""

import os
import re

import pytest

from deploylib import (BUILD_TOOLS, COMPOSE_FILES, DEPLOYED_BINARIES, EDGE_PORT, GROUPS,
                       MODES, OPS_PORTS, REPO, TOPICS, built_binaries, cmake_version,
                       compose_command, compose_env, container_argv, doc_named, docs_of,
                       groups_of_command, load_compose, matches, omnify_services,
                       pod_templates, port_number, reads, settings_table, yaml)


def configmap(mode):
    return doc_named(mode, "ConfigMap", "omnify-config")["data"]


def containers(mode):
    """(workload doc, pod spec, container) of every container."""
    out = []
    for doc, tpl in pod_templates(mode):
        for c in tpl["spec"].get("initContainers", []) + tpl["spec"]["containers"]:
            out.append((doc, tpl["spec"], c))
    return out


def groups_by_mode(mode):
    """Group -> the workload that runs it, from the rendered commands."""
    served = {}
    for doc, _, c in containers(mode):
        for g in groups_of_command(container_argv(c)):
            assert g not in served, f"{mode}: {g} runs in {served[g]} and {doc['metadata']['name']}"
            served[g] = doc
    return served


# ---------------------------------------------------------------------------
# Groups, replicas, partitions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_every_group_runs_exactly_once(mode):
    assert sorted(groups_by_mode(mode)) == sorted(GROUPS)


def test_microservices_have_a_deployment_per_group_and_the_edge():
    deps = {d["metadata"]["name"]: d for d in docs_of("microservices", "Deployment")}
    assert set(deps) == {f"omnify-{g}" for g in GROUPS}
    for g in GROUPS:
        c = deps[f"omnify-{g}"]["spec"]["template"]["spec"]["containers"]
        assert len(c) == 1 and container_argv(c[0]) == [f"omnify-{g}"]
    doc_named("microservices", "StatefulSet", "omnify-edge")
    assert not docs_of("microservices", "StatefulSet")[1:]


def test_monolith_is_one_workload_with_every_group():
    workloads = [d for d in docs_of("monolith") if d["kind"] in ("Deployment", "StatefulSet")]
    assert [d["metadata"]["name"] for d in workloads] == ["omnify-monolith"]
    assert not docs_of("monolith", "ScaledObject")
    assert not docs_of("monolith", "HorizontalPodAutoscaler")
    c = workloads[0]["spec"]["template"]["spec"]["containers"][0]
    assert container_argv(c) == ["omnify", "monolith"]


def test_hybrid_monolith_leaves_out_exactly_the_groups_deployed_alone():
    alone = {d["metadata"]["name"][len("omnify-"):] for d in docs_of("hybrid", "Deployment")}
    assert alone == {"integrations", "ml"}
    mono = doc_named("hybrid", "StatefulSet", "omnify-monolith")
    argv = container_argv(mono["spec"]["template"]["spec"]["containers"][0])
    assert set(GROUPS) - set(groups_of_command(argv)) == alone
    # The same split as the hybrid compose file.
    compose = {n: compose_command(s) for n, s in omnify_services(load_compose("hybrid")).items()}
    assert compose["omnify-monolith"] == argv


@pytest.mark.parametrize("mode", MODES)
def test_scaledobject_per_deployed_group_capped_at_partitions(mode):
    """A ScaledObject for every group Deployment, on the lag of consumer
    group <prefix><group> on <prefix><group>.commands, maxReplicaCount = partitions
    of <group>.commands in schemas/topics.json."""
    cm = configmap(mode)
    sos = {d["spec"]["scaleTargetRef"]["name"]: d for d in docs_of(mode, "ScaledObject")}
    deps = {d["metadata"]["name"]: d for d in docs_of(mode, "Deployment")}
    assert set(sos) == set(deps)
    for name, so in sos.items():
        g = name[len("omnify-"):]
        assert g in GROUPS
        spec = so["spec"]
        assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        assert spec["maxReplicaCount"] == TOPICS[f"{g}.commands"]["partitions"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        md = trigger["metadata"]
        assert md["consumerGroup"] == f"{cm['OMNIFY_TOPIC_PREFIX']}{g}"
        assert md["topic"] == f"{cm['OMNIFY_TOPIC_PREFIX']}{g}.commands"
        assert md["bootstrapServers"] == cm["OMNIFY_KAFKA_BROKERS"]
        assert int(md["lagThreshold"]) > 0
        # KEDA owns the count: a replicas field would fight it on every apply.
        assert "replicas" not in deps[name]["spec"]


def test_consumer_group_rule_is_the_codes():
    """The ScaledObjects watch consumer group <topic prefix><group>: that is
    the group id shared/runtime.c gives a group's commands loop (its
    subscriptions use <prefix><group>.<subscription>, groups of their own
    that the scalers do not watch). A tripwire: when the code names groups
    differently, this fails and k8s/generate must follow."""
    with open(os.path.join(REPO, "shared", "runtime.c")) as f:
        code = f.read()
    named = re.search(r'snprintf\(group_id, sizeof\(group_id\), "%s%s", '
                      r'rt->cfg->topic_prefix,\s*def->name\);\s*'
                      r'rt->commands = rt__loop_new\(', code)
    assert named, "shared/runtime.c no longer names consumer groups <prefix><group>"
    # Every consumer a loop makes (at start and when it joins again after
    # being fenced) uses the loop's group id.
    with open(os.path.join(REPO, "shared", "rt_loop.c")) as f:
        loop = f.read()
    uses = re.findall(r'bus_consumer_new(?:_multi)?\(\s*rt->cfg,\s*([\w>-]+),', loop)
    assert uses and set(uses) == {"loop->group_id"}, uses


def test_edge_hpa_on_cpu_capped_at_reply_partitions():
    hpa = doc_named("microservices", "HorizontalPodAutoscaler", "omnify-edge")
    spec = hpa["spec"]
    target = spec["scaleTargetRef"]
    doc_named("microservices", target["kind"], target["name"])
    assert target["name"] == "omnify-edge"
    assert spec["maxReplicas"] == TOPICS["edge.replies"]["partitions"]
    assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
    (metric,) = spec["metrics"]
    assert metric["resource"]["name"] == "cpu"


@pytest.mark.parametrize("mode", MODES)
def test_each_edge_replica_owns_its_reply_partition(mode):
    """Every pod with an edge (edge or monolith) reads the edge.replies
    partition of its StatefulSet ordinal; no fixed value could be unique."""
    for doc, _, c in containers(mode):
        argv = container_argv(c)
        if argv[0] == "omnify-edge" or argv[:2] == ["omnify", "monolith"]:
            assert doc["kind"] == "StatefulSet", doc["metadata"]["name"]
            env = {e["name"]: e for e in c.get("env", [])}
            ref = env["OMNIFY_EDGE_REPLY_PARTITION"]["valueFrom"]["fieldRef"]["fieldPath"]
            assert ref == "metadata.labels['apps.kubernetes.io/pod-index']"
            assert doc["spec"]["replicas"] <= TOPICS["edge.replies"]["partitions"]


# ---------------------------------------------------------------------------
# Probes and ports
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_probes_point_at_the_ports_and_paths_the_binaries_serve(mode):
    for doc, _, c in containers(mode):
        argv = container_argv(c)
        if argv[:2] == ["omnify", "topics"]:
            continue
        groups = groups_of_command(argv)
        serves_http = argv[0] == "omnify-edge" or argv[:2] == ["omnify", "monolith"]
        port = EDGE_PORT if serves_http else OPS_PORTS[groups[0]]
        assert [p["containerPort"] for p in c["ports"]] == [port], doc["metadata"]["name"]
        for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready"),
                            ("startupProbe", "/health")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, (doc["metadata"]["name"], probe)
            assert port_number(c, get["port"]) == port, (doc["metadata"]["name"], probe)


def test_monolith_serves_group_ops_under_ops_path():
    """Documented in the component: the monolith's groups answer at
    /ops/<group>/health|ready on port 8000 (checked live by
    test_modes_as_processes); here: the monolith container exposes only 8000."""
    for mode in ("monolith", "hybrid"):
        mono = doc_named(mode, "StatefulSet", "omnify-monolith")
        (c,) = mono["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in c["ports"]] == [EDGE_PORT]


@pytest.mark.parametrize("mode", MODES)
def test_edge_service_selects_the_pods_serving_the_api(mode):
    svc = doc_named(mode, "Service", "omnify-edge")
    sel = svc["spec"]["selector"]
    api_pods = [tpl for doc, tpl in pod_templates(mode)
                if matches(sel, tpl["metadata"]["labels"])]
    assert len(api_pods) == 1
    (c,) = api_pods[0]["spec"]["containers"]
    (port,) = svc["spec"]["ports"]
    assert port["port"] == EDGE_PORT
    assert port_number(c, port["targetPort"]) == EDGE_PORT
    assert api_pods[0]["metadata"]["labels"].get("omnify.io/api") == "true"


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

def _k8s_settings(mode):
    """[(where, argv, variable, source)] of every OMNIFY_* a container gets."""
    cm_name = "omnify-config"
    cm = configmap(mode)
    out = []
    for doc, _, c in containers(mode):
        argv = container_argv(c)
        where = f"{mode}: {doc['kind']}/{doc['metadata']['name']}"
        for ef in c.get("envFrom", []):
            assert ef["configMapRef"]["name"] == cm_name, where
            out += [(where, argv, k, "configmap") for k in cm]
        out += [(where, argv, e["name"], "env") for e in c.get("env", [])]
    return out


def _compose_settings(mode):
    out = []
    for name, svc in omnify_services(load_compose(mode)).items():
        argv = compose_command(svc)
        out += [(f"{mode} compose: {name}", argv, k, "env") for k in compose_env(svc)]
    return out


@pytest.mark.parametrize("mode", MODES)
def test_every_variable_is_a_known_setting_the_process_reads(mode):
    table = settings_table()
    for where, argv, var, source in _k8s_settings(mode) + _compose_settings(mode):
        assert var.startswith("OMNIFY_"), (where, var)
        assert var in table, f"{where}: {var} is not in `omnify settings`"
        if source == "configmap":
            # Shared by every pod: only settings every binary reads.
            assert table[var]["read_by"] == {"all"}, (where, var)
        elif argv[:2] != ["omnify", "topics"]:
            assert reads(argv, var), f"{where}: {argv[0]} does not read {var}"


@pytest.mark.parametrize("mode", MODES)
def test_required_settings_reach_every_process_that_reads_them(mode):
    """OMNIFY_JWT_SECRET (required) reaches the edge, auth and the monolith,
    from the Secret in Kubernetes and from the caller's environment in
    compose; the processes that do not read it do not get it."""
    table = settings_table()
    required = [v for v, s in table.items() if s["required"]]
    assert "OMNIFY_JWT_SECRET" in required
    for settings in (_k8s_settings(mode), _compose_settings(mode)):
        given = {}
        for where, argv, var, _ in settings:
            given.setdefault((where, tuple(argv)), set()).add(var)
        for (where, argv), vars_ in given.items():
            for var in required:
                if argv[:2] == ("omnify", "topics"):
                    continue
                assert (var in vars_) == reads(list(argv), var), (where, var)


@pytest.mark.parametrize("mode", MODES)
def test_secret_comes_from_the_secret_template(mode):
    with open(os.path.join(REPO, "k8s", "base", "secret.example.yaml")) as f:
        secret = yaml.safe_load(f)
    assert "omnify-secrets" not in [d["metadata"]["name"] for d in docs_of(mode, "Secret")]
    for doc, _, c in containers(mode):
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret["stringData"] and ref["key"] == e["name"]


def test_configmap_matches_compose_settings():
    """Kubernetes and compose give the processes the same shared settings."""
    cm = configmap("microservices")
    for mode in MODES:
        assert configmap(mode) == cm
        topics = compose_env(load_compose(mode)["services"]["topics"])
        assert topics == cm, mode


# ---------------------------------------------------------------------------
# Binaries and image
# ---------------------------------------------------------------------------

def test_referenced_binaries_are_exactly_the_ones_cmake_builds():
    referenced = set()
    for mode in MODES:
        referenced |= {container_argv(c)[0] for _, _, c in containers(mode)}
        referenced |= {compose_command(s)[0] for s in omnify_services(load_compose(mode)).values()}
    with open(os.path.join(REPO, "Dockerfile")) as f:
        copied = set(re.findall(r"build/bin/([A-Za-z0-9_.-]+)", f.read()))
    built = built_binaries()
    omnify_built = {b for b in built if b == "omnify" or b.startswith("omnify-")} - BUILD_TOOLS
    assert referenced == DEPLOYED_BINARIES
    assert copied == DEPLOYED_BINARIES
    assert omnify_built == DEPLOYED_BINARIES, (
        "build/bin has Omnify binaries the deployment does not know: "
        f"{omnify_built - DEPLOYED_BINARIES} (deploy them or list them in BUILD_TOOLS)")


@pytest.mark.parametrize("mode", MODES)
def test_image_is_the_project_version(mode):
    for _, _, c in containers(mode):
        assert c["image"] == f"omnify:{cmake_version()}"
        assert c["imagePullPolicy"] == "IfNotPresent"


# ---------------------------------------------------------------------------
# Security, resources, disruption budgets, network policies
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_pods_are_non_root_read_only_without_capabilities(mode):
    """The "restricted" Pod Security Standard the namespace enforces, and
    the image's uid."""
    ns = doc_named(mode, "Namespace", "omnify")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc, tpl in pod_templates(mode):
        spec = tpl["spec"]
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        assert not spec.get("hostNetwork") and not spec.get("hostPID")
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert "add" not in sc["capabilities"]
            assert {m["mountPath"] for m in c["volumeMounts"]} == {"/tmp"}


def _res(c):
    def num(q):
        m = re.fullmatch(r"(\d+)(m|Mi|Gi)?", str(q))
        v, unit = int(m.group(1)), m.group(2)
        return {None: v, "m": v / 1000, "Mi": v, "Gi": v * 1024}[unit]
    r = c["resources"]
    return {k: {x: num(r[k][x]) for x in ("cpu", "memory")} for k in ("requests", "limits")}


def test_resources_are_small_and_argon2_has_room():
    """Requests and limits everywhere; auth and the monolith get the memory
    of one argon2id hash (OMNIFY_ARGON2_M_COST_KIB) more than their peers."""
    def of(mode, name):
        doc = [d for d in docs_of(mode) if d["metadata"]["name"] == name
               and d["kind"] in ("Deployment", "StatefulSet")][0]
        return _res(doc["spec"]["template"]["spec"]["containers"][0])
    edge = of("microservices", "omnify-edge")
    assert edge == {"requests": {"cpu": 0.05, "memory": 32}, "limits": {"cpu": 0.5, "memory": 128}}
    plain = of("microservices", "omnify-ml")
    assert plain == {"requests": {"cpu": 0.025, "memory": 24},
                     "limits": {"cpu": 0.25, "memory": 96}}
    for g in GROUPS:
        if g != "auth":
            assert of("microservices", f"omnify-{g}") == plain, g
    argon2_mib = int(settings_table()["OMNIFY_ARGON2_M_COST_KIB"]["default"]) // 1024
    auth = of("microservices", "omnify-auth")
    for k in ("requests", "limits"):
        assert auth[k]["memory"] - plain[k]["memory"] >= argon2_mib
    mono = of("monolith", "omnify-monolith")
    assert mono["requests"]["cpu"] == 0.1 and mono["limits"]["cpu"] == 1
    assert mono["requests"]["memory"] == 96 + argon2_mib
    assert mono["limits"]["memory"] == 256 + argon2_mib
    assert of("hybrid", "omnify-monolith") == mono
    for mode in MODES:
        for _, _, c in containers(mode):
            r = _res(c)
            for x in ("cpu", "memory"):
                assert 0 < r["requests"][x] <= r["limits"][x], c["name"]


@pytest.mark.parametrize("mode", MODES)
def test_disruption_budgets_cover_every_long_running_workload(mode):
    pdbs = docs_of(mode, "PodDisruptionBudget")
    for doc, tpl in pod_templates(mode):
        if doc["kind"] == "Job":
            continue
        covering = [p for p in pdbs if matches(p["spec"]["selector"]["matchLabels"],
                                               tpl["metadata"]["labels"])]
        assert len(covering) == 1, doc["metadata"]["name"]
        # maxUnavailable, so a single replica never blocks a node drain.
        assert covering[0]["spec"].get("maxUnavailable") == 1
    assert len(pdbs) == len([d for d, _ in pod_templates(mode) if d["kind"] != "Job"])


@pytest.mark.parametrize("mode", MODES)
def test_workload_selectors_match_their_pods(mode):
    for doc, tpl in pod_templates(mode):
        if doc["kind"] == "Job":
            continue
        assert matches(doc["spec"]["selector"]["matchLabels"], tpl["metadata"]["labels"])
        if doc["kind"] == "StatefulSet":
            doc_named(mode, "Service", doc["spec"]["serviceName"])


@pytest.mark.parametrize("mode", MODES)
def test_network_policies(mode):
    """Default deny for every Omnify pod; egress only to DNS (53), Kafka
    (9092) and MongoDB (27017); ingress only on the API port for the API pods
    and on the ops ports for the groups."""
    pods = [tpl["metadata"]["labels"] for _, tpl in pod_templates(mode)]
    assert all(p.get("app.kubernetes.io/part-of") == "omnify" for p in pods)
    nps = {d["metadata"]["name"]: d["spec"] for d in docs_of(mode, "NetworkPolicy")}
    deny = nps["omnify-default-deny"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny.get("ingress") and not deny.get("egress")
    assert deny["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "omnify"}
    egress_ports, ingress = set(), []
    for name, spec in nps.items():
        for rule in spec.get("egress", []):
            assert rule.get("to"), f"{name}: egress to anywhere"
            egress_ports |= {p["port"] for p in rule["ports"]}
        for rule in spec.get("ingress", []):
            ingress.append((spec["podSelector"]["matchLabels"],
                            {(p["port"], p.get("endPort", p["port"])) for p in rule["ports"]}))
    assert egress_ports == {53, 9092, 27017}
    kafka_port = int(configmap(mode)["OMNIFY_KAFKA_BROKERS"].rsplit(":", 1)[1])
    mongo_port = int(re.search(r":(\d+)", configmap(mode)["OMNIFY_MONGO_URI"][10:]).group(1))
    assert {kafka_port, mongo_port} <= egress_ports
    for sel, ports in ingress:
        selected = [p for p in pods if matches(sel, p)]
        for p in selected:
            if p.get("omnify.io/api") == "true":
                assert ports == {(EDGE_PORT, EDGE_PORT)}
            else:
                assert p.get("app.kubernetes.io/component") == "group"
                assert ports == {(min(OPS_PORTS.values()), max(OPS_PORTS.values()))}
    api_pods = [p for p in pods if p.get("omnify.io/api") == "true"]
    assert api_pods and any(matches(sel, api_pods[0]) for sel, _ in ingress)


@pytest.mark.parametrize("mode", MODES)
def test_topics_job_runs_the_compose_topics_command(mode):
    job = doc_named(mode, "Job", "omnify-topics")
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert container_argv(c) == compose_command(load_compose(mode)["services"]["topics"])
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


@pytest.mark.parametrize("mode", MODES)
def test_everything_lives_in_the_omnify_namespace(mode):
    for d in docs_of(mode):
        if d["kind"] != "Namespace":
            assert d["metadata"].get("namespace") == "omnify", d["metadata"]["name"]


@pytest.mark.parametrize("mode", MODES)
def test_grace_period_covers_graceful_shutdown(mode):
    timeout_s = int(configmap(mode)["OMNIFY_SHUTDOWN_TIMEOUT_MS"]) / 1000
    for doc, tpl in pod_templates(mode):
        if doc["kind"] == "Job":
            continue
        spec = tpl["spec"]
        pre = 0
        for c in spec["containers"]:
            pre_stop = (c.get("lifecycle") or {}).get("preStop") or {}
            cmd = pre_stop.get("exec", {}).get("command", [])
            if cmd[:1] == ["/bin/sleep"]:
                pre = int(cmd[1])
        assert spec["terminationGracePeriodSeconds"] > timeout_s + pre, doc["metadata"]["name"]


def test_compose_files_listed_are_the_modes():
    assert set(os.path.basename(p) for p in COMPOSE_FILES.values()) == {
        f"docker-compose.{m}.yml" for m in MODES}
    assert sorted(os.listdir(os.path.join(REPO, "k8s", "overlays"))) == sorted(MODES)
