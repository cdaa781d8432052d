"""Helpers of the infrastructure, onboarding and console tests: tokens of a
given role, events and commands produced with kcat, polling."""

import time

from conftest import default_claims, http, make_jwt
from mpack import mp_pack
from test_auth_rbac import kcat_produce, produce_command, uuid7  # noqa: F401


def token(session, roles=("admin",), tid=None, sub=None):
    return make_jwt(session.jwt_secret, default_claims(roles=roles, tid=tid, sub=sub))


def auth(tok):
    return {"Authorization": f"Bearer {tok}"}


def produce_event(session, group, type_, body, tenant, key=None):
    """One event of another group onto <prefix><group>.events, as that group
    would publish it (EVENTS.md)."""
    mid = uuid7()
    headers = [("id", mid), ("type", type_), ("schema-version", 1),
               ("created-at", int(time.time() * 1000)), ("tenant", tenant)]
    kcat_produce(session, f"{session.topic_prefix}{group}.events", mp_pack(body),
                 key=key or tenant, headers=headers)
    return mid


def until(fn, timeout=60.0, every=0.5, what="condition"):
    """Call fn until it returns a truthy value; that value, or fail with
    the last one."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} not met after {timeout}s; last: {last!r}")


def get(url, tok, path, **kw):
    return http("GET", url + path, headers=auth(tok), **kw)
