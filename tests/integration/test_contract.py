"""The API contract tells the truth: schemathesis against the live document.

A monolith serves /openapi.json; tests/contract/run (schemathesis, pinned,
in a virtualenv under .local/ made by tests/contract/setup) generates
requests valid by that document, a bounded number per operation, and checks
every answer: no 5xx, no status the document does not list, content types,
headers and bodies as documented, and no valid request refused as invalid.
It runs the examples, coverage, fuzzing and stateful phases (links feed the
stateful one) for at most OMNIFY_CONTRACT_MAX_TIME seconds (default 240).

Also here: the document is the one the schemas generate, every operation
declares its security, and the rules the tester cannot see (405 on a path's
other methods).
"""

import json
import os
import subprocess

from conftest import (LOW_ARGON2, REPO, assert_problem, bin_path, http,
                      wait_all_status)

import pytest

RUN = os.path.join(REPO, "tests", "contract", "run")


@pytest.fixture(scope="module")
def mono(module_procs):
    # Limits high enough that the tester reaches the handlers instead of
    # collecting 429s (which it would accept: they are documented).
    # A long reply timeout: the commands the tester queues with
    # respond-async are handled before the synchronous ones behind them.
    p = module_procs.start_monolith(
        OMNIFY_RATE_IP_PER_MIN="1000000", OMNIFY_RATE_ACCOUNT_PER_MIN="1000000",
        OMNIFY_REPLY_TIMEOUT_MS="60000", **LOW_ARGON2)
    wait_all_status(p.url)
    return p


def test_served_document_is_the_generated_one(mono):
    served = http("GET", mono.url + "/openapi.json").body
    made = json.loads(subprocess.run([bin_path("omnify"), "openapi"], check=True,
                                     capture_output=True, text=True).stdout)
    assert served == made
    for path, item in served["paths"].items():
        for method, op in item.items():
            # Bearer or none, said on every operation.
            assert "security" in op, (method, path)
            assert "400" in op["responses"] or not path.startswith("/api/") \
                or path == "/api/operations/{id}", (method, path)


def test_other_methods_of_a_literal_path_are_405(mono):
    """Regression: DELETE /api/sessions/revoke-others answered 400 (the
    {id} of DELETE /api/sessions/{id} is no UUID) instead of 405."""
    r = http("DELETE", mono.url + "/api/sessions/revoke-others")
    assert_problem(r, 405)
    assert r.header("Allow") == "POST", dict(r.headers)


def test_schemathesis_finds_no_failure(mono, session):
    env = dict(os.environ)
    env["OMNIFY_CONTRACT_REPORT"] = os.path.join(session.tmpdir, "contract")
    r = subprocess.run([RUN, mono.url], env=env, capture_output=True, text=True,
                       timeout=900)
    out = r.stdout + r.stderr
    print(out[-6000:])
    figures = [line for line in out.splitlines() if line.startswith("contract: ")]
    assert figures, out[-4000:]
    assert r.returncode == 0, out[-8000:]
    assert " 0 failures" in figures[-1], figures


def test_asyncapi_document_is_valid():
    """`omnify asyncapi` against the official AsyncAPI 3.0.0 JSON Schema
    (@asyncapi/specs, fetched by tests/contract/setup where npm is), and
    every $ref in it resolves."""
    st = subprocess.run([os.path.join(REPO, "tests", "contract", "setup")],
                        check=True, capture_output=True, text=True).stdout.strip()
    venv = os.path.dirname(os.path.dirname(st))
    schema = os.path.join(venv, "asyncapi-specs-6.11.1", "package", "schemas",
                          "3.0.0-without-$id.json")
    if not os.path.exists(schema):
        pytest.skip("no npm here to fetch @asyncapi/specs: the AsyncAPI "
                    "document is not checked against its JSON Schema")
    doc = subprocess.run([bin_path("omnify"), "asyncapi"], check=True,
                         capture_output=True, text=True).stdout
    check = subprocess.run(
        [os.path.join(venv, "bin", "python"), "-c", """
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
doc = json.loads(sys.stdin.read())
errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
for e in errors[:5]:
    print(list(e.path), e.message[:200])
def resolve(ref):
    o = doc
    for part in ref[2:].split('/'):
        o = o[part.replace('~1', '/').replace('~0', '~')]
bad = []
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == '$ref':
                try:
                    resolve(v)
                except (KeyError, TypeError):
                    bad.append(v)
            else:
                walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(doc)
print('unresolved', bad[:5])
sys.exit(1 if errors or bad else 0)
""", schema], input=doc, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    parsed = json.loads(doc)
    assert parsed["asyncapi"] == "3.0.0"
    assert "auth.session.revoked" in parsed["operations"]
    assert parsed["operations"]["auth.signup"]["reply"]
