"""The Kubernetes manifests, offline: every overlay renders with kustomize and
every rendered document validates against the Kubernetes JSON schemas
(kubernetes-validate, strict, oldest and newest supported version) or, for
KEDA's ScaledObject, against k8s/schemas/; the generated files are current."""

import os
import subprocess

import pytest

from deploylib import K8S_TOOLS, MODES, REPO, render_overlay, validate_rendered
from deploylib import k8s_tools  # noqa: F401  (fixture)


@pytest.mark.parametrize("mode", MODES)
def test_overlay_renders_and_validates(k8s_tools, mode, tmp_path):
    text, docs = render_overlay(mode)
    assert docs, mode
    validate_rendered(k8s_tools, text, docs, tmp_path / f"{mode}.yaml")


def test_secret_template_validates(k8s_tools):
    path = os.path.join(REPO, "k8s", "base", "secret.example.yaml")
    r = subprocess.run([k8s_tools, "validate", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def test_validator_rejects_broken_manifests(k8s_tools):
    """The validation is real: a wrong type, an unknown field and a KEDA
    trigger value that is not a string are each refused."""
    text, _ = render_overlay("hybrid")
    for old, new, expect in [
        ("readOnlyRootFilesystem: true", "readOnlyRootFilesystem: yes-please", "boolean"),
        ("maxUnavailable: 1", "maxUnavailabel: 1", "maxUnavailabel"),
        ('lagThreshold: "50"', "lagThreshold: 50", "KEDA schema"),
    ]:
        assert old in text, old
        r = subprocess.run([k8s_tools, "validate", "-"], input=text.replace(old, new, 1),
                           capture_output=True, text=True)
        assert r.returncode != 0, new
        assert expect in r.stderr, r.stderr


def test_generated_files_are_up_to_date():
    r = subprocess.run([os.path.join(REPO, "k8s", "generate"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_tools_report_their_versions(k8s_tools):
    r = subprocess.run([K8S_TOOLS, "versions"], capture_output=True, text=True, check=True)
    assert "kustomize: " in r.stdout and "v5." in r.stdout
    assert "kubernetes-validate 1.37.0" in r.stdout
