"""Schemathesis hooks of the contract test (SCHEMATHESIS_HOOKS=hooks).

Two things a real client does that generated data would not:
- Idempotency-Key: a client sends a fresh key for each distinct request;
  generated keys repeat ("0"), and the edge rightly answers 422 to a key
  reused for another request. A key given by the generator is replaced by
  a unique one (422 for reuse is tested in tests/integration).
- Prefer: wait=N bounds the wait for the reply, and behind the commands
  the tester itself queued with respond-async a short wait ends in a 504
  (documented, and what such a client should get; the 504 is tested in
  tests/integration). The tester cannot know the load it made, so wait=N
  is dropped and respond-async kept.
- Credentials: every operation runs with account A's bearer token, except
  those that can end the session or the membership they run under: logout
  runs with account B's (it ends B's session at once), and ending a
  session, removing a member, changing a password, turning MFA off,
  switching organisation or accepting terms with account C's, so none of
  them succeeding can turn every later request into a 401.
"""
import os
import uuid

import schemathesis

TOKEN_A = os.environ["CONTRACT_TOKEN_A"]
TOKEN_B = os.environ["CONTRACT_TOKEN_B"]
TOKEN_C = os.environ["CONTRACT_TOKEN_C"]
LOGOUT = ("POST", "/api/auth/logout")
SESSION_ENDERS = {
    ("DELETE", "/api/sessions/{id}"),
    ("POST", "/api/sessions/revoke-others"),
    ("DELETE", "/api/rbac/members/{user_id}"),
    ("PATCH", "/api/rbac/members/{user_id}"),
    ("POST", "/api/auth/password/change"),
    ("POST", "/api/mfa/disable"),
    ("POST", "/api/rbac/orgs/switch"),
    ("POST", "/api/legal/accept"),
}


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers if case.headers is not None else {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = str(uuid.uuid4())
        elif name.lower() == "prefer":
            kept = [p.strip() for p in str(headers[name]).split(",")
                    if not p.strip().lower().startswith("wait")]
            if kept:
                headers[name] = ", ".join(kept)
            else:
                del headers[name]
    op = (case.operation.method.upper(), case.operation.path)
    token = (TOKEN_B if op == LOGOUT else
             TOKEN_C if op in SESSION_ENDERS else TOKEN_A)
    headers["Authorization"] = "Bearer " + token
    case.headers = headers
