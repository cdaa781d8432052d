"""The opt-in alert rules (k8s/components/alerts), offline: the component
renders on top of every overlay and validates with 0 errors, the
PrometheusRule schema in k8s/schemas/ is really applied (broken rules are
refused, naming the field), no overlay includes the rules by default, and
every metric and label an alert reads is one the code exports."""

import glob
import os
import re
import subprocess

import pytest

from deploylib import (K8S_TOOLS, MODES, OVERLAYS, REPO, docs_of, render_overlay,
                       validate_rendered, yaml)
from deploylib import k8s_tools  # noqa: F401  (fixture)

ALERTS = os.path.join(REPO, "k8s", "components", "alerts")
RULE_FILE = os.path.join(ALERTS, "prometheusrule.yaml")
SOURCE_DIRS = ("shared", "edge", "consumers")
# Labels Prometheus adds when it scrapes (target labels), and a histogram's le.
SCRAPE_LABELS = {"namespace", "pod", "job", "instance", "container", "service", "le"}


def rule_doc():
    with open(RULE_FILE) as f:
        (doc,) = [d for d in yaml.safe_load_all(f) if d]
    return doc


def alert_rules():
    return [r for g in rule_doc()["spec"]["groups"] for r in g["rules"] if "alert" in r]


def render_with_alerts(mode, tmp_path):
    """A kustomization of the overlay plus the alerts component, as an
    operator would write it (kustomize refuses absolute paths: relative ones)."""
    d = tmp_path / f"{mode}-with-alerts"
    d.mkdir()
    k8s = os.path.relpath(os.path.join(REPO, "k8s"), d)
    (d / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"resources: [{k8s}/overlays/{mode}]\n"
        f"components: [{k8s}/components/alerts]\n")
    r = subprocess.run([K8S_TOOLS, "kustomize", str(d)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---------------------------------------------------------------------------
# Rendering and validation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_alerts_component_renders_with_the_overlay_and_validates(k8s_tools, mode, tmp_path):
    text = render_with_alerts(mode, tmp_path)
    docs = [d for d in yaml.safe_load_all(text) if d]
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    assert rules[0]["metadata"]["namespace"] == "omnify"
    # The component adds the rule and changes nothing else.
    assert [d for d in docs if d["kind"] != "PrometheusRule"] == render_overlay(mode)[1]
    report = validate_rendered(k8s_tools, text, docs, tmp_path / f"{mode}-with-alerts.yaml")
    assert "1 PrometheusRule (monitoring.coreos.com/v1)" in report


@pytest.mark.parametrize("mode", MODES)
def test_no_overlay_includes_the_alerts_by_default(mode):
    """Opt-in: clusters without the Prometheus Operator have no PrometheusRule
    kind, and `kubectl apply -k` of an overlay must work there."""
    assert not docs_of(mode, "PrometheusRule")
    with open(os.path.join(OVERLAYS[mode], "kustomization.yaml")) as f:
        assert "components/alerts" not in f.read()


BROKEN = [
    # (old, new, what stderr must say)
    ("for: 15m", "for: 5m5", "/for: '5m5' does not match"),
    ("- alert: OmnifyDeadLetters\n",
     "- alert: OmnifyDeadLetters\n          record: omnify:dead_letters\n",
     "is valid under each of"),
    ("for: 10m", "keepFiringFor: 10m", "'keepFiringFor' was unexpected"),
    ("- alert: OmnifyCommitFailures", "- record: omnify:commit_failures",
     "False schema does not allow '15m'"),
    ("severity: critical", "severity: 2", "/labels/severity: 2 is not of type 'string'"),
]


@pytest.mark.parametrize("old,new,expect", BROKEN, ids=[b[2][:24] for b in BROKEN])
def test_validator_rejects_broken_rules(k8s_tools, old, new, expect):
    """The PrometheusRule schema is applied (not skipped, not a blanket
    'unknown kind' error): the rules as written pass, and each breakage is
    refused by that schema, naming what is wrong."""
    with open(RULE_FILE) as f:
        text = f.read()
    ok = subprocess.run([k8s_tools, "validate", "-"], input=text, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert old in text, old
    r = subprocess.run([k8s_tools, "validate", "-"], input=text.replace(old, new, 1),
                       capture_output=True, text=True)
    assert r.returncode != 0, new
    assert "PrometheusRule schema: spec/groups/" in r.stderr, r.stderr
    assert expect in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# The rules against the code
# ---------------------------------------------------------------------------

def exported_metrics():
    """{name: counter|gauge|histogram} from the metrics_counter / _gauge /
    _histogram calls in shared/, edge/ and consumers/."""
    found = {}
    for d in SOURCE_DIRS:
        for path in glob.glob(os.path.join(REPO, d, "**", "*.c"), recursive=True):
            with open(path) as f:
                for kind, name in re.findall(
                        r'\bmetrics_(counter|gauge|histogram)\(\s*"(\w+)"', f.read()):
                    found[name] = kind
    return found


def exported_labels():
    """Label names the code writes into a metric's labels (name=\\"...)."""
    found = set()
    for d in SOURCE_DIRS:
        for path in glob.glob(os.path.join(REPO, d, "**", "*.c"), recursive=True):
            with open(path) as f:
                found |= set(re.findall(r'(\w+)=\\"', f.read()))
    return found


def metrics_in(expr):
    return set(re.findall(r"\b(omnify_\w+)", expr))


def labels_in(expr):
    """Labels in matchers ({label="…"}) and in by/without/on/ignoring clauses."""
    labels = set()
    for sel in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r'(\w+)\s*(?:=~|!~|!=|=)\s*"', sel))
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {x.strip() for x in clause.split(",") if x.strip()}
    return labels


def test_the_sources_are_read():
    metrics = exported_metrics()
    assert {"omnify_dlq_total", "omnify_consumer_lag", "omnify_http_requests_total",
            "omnify_http_request_seconds"} <= set(metrics), sorted(metrics)
    assert metrics["omnify_http_request_seconds"] == "histogram"
    assert {"group", "topic", "partition", "route", "status"} <= exported_labels()


def test_alerts_use_only_metrics_the_code_exports():
    metrics = exported_metrics()
    for rule in alert_rules():
        used = metrics_in(str(rule["expr"]))
        assert used, rule["alert"]
        for name in used:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in metrics or metrics.get(base) == "histogram", (
                f"{rule['alert']}: {name} is not registered in {', '.join(SOURCE_DIRS)}")


def test_alerts_use_only_labels_the_metrics_carry():
    """Labels in matchers and groupings exist in the code (or come from the
    scrape), and every $labels.X an annotation shows survives the
    expression's aggregation."""
    known = exported_labels() | SCRAPE_LABELS
    for rule in alert_rules():
        expr = str(rule["expr"])
        assert labels_in(expr) <= known, (rule["alert"], labels_in(expr) - known)
        shown = set()
        for text in rule["annotations"].values():
            shown |= set(re.findall(r"\$labels\.(\w+)", text))
        kept = set()
        for clause in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            kept |= {x.strip() for x in clause.split(",")}
        assert shown <= (kept if kept else known), (rule["alert"], shown - (kept or known))


def test_alerts_tell_the_operator_what_to_do():
    rules = alert_rules()
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), names
    groups = [g["name"] for g in rule_doc()["spec"]["groups"]]
    assert len(groups) == len(set(groups)), groups
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"].strip(), r["alert"]
        assert len(r["annotations"]["description"]) > 80, r["alert"]
    dlq = [r for r in rules if "omnify_dlq_total" in str(r["expr"])]
    assert dlq and all("omnify dlq list {{ $labels.group }}" in r["annotations"]["description"]
                       for r in dlq)
    # What the operators asked to be told about.
    covered = set().union(*(metrics_in(str(r["expr"])) for r in rules))
    assert {"omnify_dlq_total", "omnify_consumer_lag", "omnify_consumer_rejoins_total",
            "omnify_commit_failures_total", "omnify_mail_failed_total",
            "omnify_http_requests_total", "omnify_produce_errors_total"} <= covered
