"""Email verification, forgotten and reset passwords, password change, and
the mail they send.

The monolith talks to a local mail API (MailServer below) that answers
`POST /v3/mail/send` as SendGrid documents it: it insists on the Bearer
key, checks the JSON shape, answers 202 with an empty body and records the
mail, so the tests read the links out of the mails as a person would.
"""

import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import (HOST, LOW_ARGON2, assert_problem, free_port, http, login, signup,
                      unique_email, wait_status)

PASSWORD = "Recovery-test-pw 1"
NEW_PASSWORD = "Brand-new-pw 22"
MAIL_KEY = "SG.test-" + uuid.uuid4().hex
MAIL_FROM = "no-reply@omnify.test"
PUBLIC_URL = "https://app.omnify.test"
TOKEN_RE = r"\?token=([A-Za-z0-9_-]{20,})"


# ---------------------------------------------------------------------------
# A SendGrid v3 mail-send look-alike
# ---------------------------------------------------------------------------

def sendgrid_errors(body):
    """What SendGrid would refuse in a mail-send body, as its
    [{message, field}] errors; [] when the shape is right."""
    errors = []

    def bad(field, message):
        errors.append({"message": message, "field": field, "help": None})

    if not isinstance(body, dict):
        return [{"message": "Bad Request", "field": None, "help": None}]
    allowed = {"personalizations", "from", "reply_to", "subject", "content",
               "attachments", "template_id", "headers", "categories",
               "custom_args", "send_at", "batch_id", "asm", "ip_pool_name",
               "mail_settings", "tracking_settings"}
    for key in set(body) - allowed:
        bad(key, "unknown field")
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not 1 <= len(pers) <= 1000:
        bad("personalizations", "The personalizations field is required and "
            "must have at least one personalization.")
    else:
        for i, p in enumerate(pers):
            to = p.get("to") if isinstance(p, dict) else None
            if not isinstance(to, list) or not to:
                bad(f"personalizations.{i}.to", "The to array is required.")
                continue
            for j, addr in enumerate(to):
                email = addr.get("email") if isinstance(addr, dict) else None
                if not isinstance(email, str) or "@" not in email:
                    bad(f"personalizations.{i}.to.{j}.email",
                        "Does not contain a valid address.")
    sender = body.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str) \
            or "@" not in sender["email"]:
        bad("from.email", "The from object must be provided for every email send.")
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        bad("subject", "The subject is required.")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        bad("content", "Unless a valid template_id is provided, the content "
            "parameter is required.")
    else:
        for i, c in enumerate(content):
            if not isinstance(c, dict) or not isinstance(c.get("type"), str) \
                    or not isinstance(c.get("value"), str) or not c["value"]:
                bad(f"content.{i}", "Content must have a type and a non-empty value.")
        if content and isinstance(content[0], dict) and len(content) > 1 \
                and content[0].get("type") != "text/plain":
            bad("content.0.type", "If present, text/plain must be first.")
    return errors


class MailServer:
    """POST /v3/mail/send on 127.0.0.1:<port>. mode "ok" answers 202 and
    records the mail, "down" answers 503, "hang" holds the request (up to
    30 s, or until the mode changes) and then answers 503; recipients starting with
    "bounce-" get 400 (a permanent refusal). Every request is counted per
    recipient in `attempts`; bodies SendGrid would refuse go to `rejected`."""

    def __init__(self, api_key=MAIL_KEY, port=None):
        self.api_key = api_key
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.mode = "ok"
        self.mails = []
        self.attempts = {}
        self.rejected = []
        self.cond = threading.Condition()
        self._httpd = None

    def start(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, status, body=None, headers=()):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.answer(405, {"errors": [{"message": "method not allowed"}]})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v3/mail/send":
                    return self.answer(404, {"errors": [{"message": "not found"}]})
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    with server.cond:
                        server.rejected.append({"why": "authorization"})
                    return self.answer(401, {"errors": [{
                        "message": "The provided authorization grant is invalid, "
                                   "expired, or revoked", "field": None, "help": None}]})
                if (self.headers.get("Content-Type") or "").split(";")[0] != "application/json":
                    with server.cond:
                        server.rejected.append({"why": "content-type"})
                    return self.answer(415, {"errors": [{"message": "Content-Type "
                                                         "must be application/json"}]})
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                errors = sendgrid_errors(body)
                if errors:
                    with server.cond:
                        server.rejected.append({"why": errors, "body": body})
                    return self.answer(400, {"errors": errors})
                to = body["personalizations"][0]["to"][0]["email"]
                with server.cond:
                    server.attempts[to] = server.attempts.get(to, 0) + 1
                    server.cond.notify_all()
                    mode = server.mode
                    if mode == "hang":
                        server.cond.wait_for(lambda: server.mode != "hang", timeout=30)
                        mode = "down"
                if mode == "down":
                    return self.answer(503, {"errors": [{"message": "Service Unavailable"}]})
                if to.startswith("bounce-"):
                    return self.answer(400, {"errors": [{
                        "message": "Does not contain a valid address.",
                        "field": "personalizations.0.to.0.email", "help": None}]})
                mail = {"to": to, "from": body["from"]["email"], "subject": body["subject"],
                        "type": body["content"][0]["type"],
                        "text": body["content"][0]["value"]}
                with server.cond:
                    server.mails.append(mail)
                    server.cond.notify_all()
                self.answer(202, None, [("X-Message-Id", uuid.uuid4().hex)])

        self._httpd = ThreadingHTTPServer((HOST, self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def set_mode(self, mode):
        with self.cond:
            self.mode = mode
            self.cond.notify_all()

    def mails_to(self, to, contains=""):
        with self.cond:
            return [m for m in self.mails
                    if m["to"] == to.lower() and contains in m["text"]]

    def attempts_to(self, to):
        with self.cond:
            return self.attempts.get(to.lower(), 0)

    def wait_mail(self, to, count=1, timeout=20.0, contains=""):
        """The first `count` mails to `to` (whose text holds `contains`),
        waiting up to timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [m for m in self.mails
                       if m["to"] == to.lower() and contains in m["text"]]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    break
                self.cond.wait(min(left, 0.5))
        assert len(got) >= count, (
            f"{len(got)} mail(s) to {to} after {timeout}s, wanted {count}; "
            f"attempts {self.attempts.get(to.lower(), 0)}; rejected {self.rejected}")
        return got[:count]


def link_token(mail, path):
    """The token of the link to PUBLIC_URL + path in a mail."""
    m = re.search(re.escape(PUBLIC_URL + path) + TOKEN_RE, mail["text"])
    assert m, f"no {path} link in the mail: {mail['text']!r}"
    return m.group(1)


# ---------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mail():
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def mono(module_procs, mail):
    p = module_procs.start_monolith(
        OMNIFY_MAIL_BASE_URL=mail.url, OMNIFY_MAIL_API_KEY=MAIL_KEY,
        OMNIFY_MAIL_FROM=MAIL_FROM, OMNIFY_PUBLIC_URL=PUBLIC_URL + "/",
        OMNIFY_LOGIN_MAX_FAILURES="3", **LOW_ARGON2)
    wait_status(p.url, "auth")
    return p


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def new_account(base, tag="rec", password=PASSWORD):
    """Sign up and log in: (email, login answer)."""
    email, r = signup(base, email=unique_email(tag), password=password)
    assert r.status == 201, r
    r = login(base, email, password)
    assert r.status == 200, r
    return email, r.body


def me(base, access):
    return http("GET", base + "/api/auth/me", headers=bearer(access))


def wait_unauthorized(base, access, timeout=10.0):
    """Revocation reaches the edge through auth.events: poll /me until 401."""
    deadline = time.monotonic() + timeout
    r = None
    while time.monotonic() < deadline:
        r = me(base, access)
        if r.status == 401:
            return r
        time.sleep(0.2)
    raise AssertionError(f"access token still accepted after {timeout}s: {r!r}")


def forgot(base, email):
    return http("POST", base + "/api/auth/password/forgot", json_body={"email": email})


def reset(base, token, password):
    return http("POST", base + "/api/auth/password/reset",
                json_body={"token": token, "password": password})


def verify(base, token):
    return http("POST", base + "/api/auth/verify-email", json_body={"token": token})


# ---------------------------------------------------------------------------
# Email verification
# ---------------------------------------------------------------------------

def test_signup_mails_a_verification_link_that_verifies(mono, mail):
    email, tokens = new_account(mono.url)
    r = me(mono.url, tokens["access_token"])
    assert r.status == 200 and r.body["email_verified"] is False, r

    [m] = mail.wait_mail(email)
    assert m["from"] == MAIL_FROM
    assert m["type"] == "text/plain"
    assert m["subject"]
    # The public URL's trailing slash does not double up.
    assert PUBLIC_URL + "/verify-email?token=" in m["text"], m["text"]
    token = link_token(m, "/verify-email")

    r = verify(mono.url, token)
    assert r.status == 200 and r.body == {"email_verified": True}, r
    r = me(mono.url, tokens["access_token"])
    assert r.status == 200 and r.body["email_verified"] is True, r

    # Single use: a used link is gone (410).
    body = assert_problem(verify(mono.url, token), 410)
    assert "link" in body["detail"], body


def test_verify_rejects_unknown_tokens_and_bad_bodies(mono):
    body = assert_problem(verify(mono.url, "A" * 43), 410)
    assert "invalid" in body["detail"] and "A" * 43 not in json.dumps(body), body
    assert_problem(http("POST", mono.url + "/api/auth/verify-email", json_body={}),
                   400, fields={"token"})
    assert_problem(verify(mono.url, "short"), 400, fields={"token"})
    assert_problem(verify(mono.url, 12345), 400, fields={"token"})
    assert_problem(http("POST", mono.url + "/api/auth/verify-email",
                        json_body={"token": "B" * 43, "email": "x@example.com"}),
                   400, fields={"email"})


def test_resend_verification(mono, mail):
    email, tokens = new_account(mono.url, "resend")
    [first] = mail.wait_mail(email, contains="/verify-email?")
    r = http("POST", mono.url + "/api/auth/resend-verification",
             headers=bearer(tokens["access_token"]))
    assert r.status == 200 and r.body == {"sent": True}, r
    second = mail.wait_mail(email, count=2)[1]
    t1, t2 = link_token(first, "/verify-email"), link_token(second, "/verify-email")
    assert t1 != t2
    # Either link works; once verified there is nothing more to send.
    assert verify(mono.url, t2).status == 200
    r = http("POST", mono.url + "/api/auth/resend-verification",
             headers=bearer(tokens["access_token"]))
    assert r.status == 200 and r.body == {"sent": False}, r
    # Using the older link after verifying changes nothing and says so.
    r = verify(mono.url, t1)
    assert r.status == 200 and r.body == {"email_verified": True}, r
    assert_problem(http("POST", mono.url + "/api/auth/resend-verification"), 401)


def test_a_verification_token_is_not_a_reset_token(mono, mail):
    email, _ = new_account(mono.url, "kinds")
    token = link_token(mail.wait_mail(email, contains="/verify-email?")[0],
                       "/verify-email")
    assert_problem(reset(mono.url, token, NEW_PASSWORD), 410)
    assert login(mono.url, email, PASSWORD).status == 200
    # The failed attempt did not spend it.
    assert verify(mono.url, token).status == 200


# ---------------------------------------------------------------------------
# Forgotten password and reset
# ---------------------------------------------------------------------------

def test_forgot_answers_the_same_for_unknown_and_known_emails(mono, mail):
    known, _ = new_account(mono.url, "known")
    unknown = unique_email("nobody")
    r_unknown = forgot(mono.url, unknown)
    r_known = forgot(mono.url, known.upper())  # emails are case-insensitive
    for r in (r_unknown, r_known):
        assert r.status == 200, r
        assert r.content_type.startswith("application/json"), r
        assert r.body == {"accepted": True}, r
    assert r_unknown.raw == r_known.raw
    [m] = mail.wait_mail(known, contains="/reset-password?")
    assert link_token(m, "/reset-password")
    time.sleep(1.0)
    assert mail.attempts_to(unknown) == 0


def test_forgot_validation(mono):
    url = mono.url + "/api/auth/password/forgot"
    assert_problem(http("POST", url, json_body={}), 400, fields={"email"})
    assert_problem(http("POST", url, json_body={"email": "not-an-email"}), 400,
                   fields={"email"})


def reset_token_for(mono, mail, email):
    n = len(mail.mails_to(email, "/reset-password?"))
    assert forgot(mono.url, email).status == 200
    got = mail.wait_mail(email, count=n + 1, contains="/reset-password?")
    return link_token(got[n], "/reset-password")


def test_reset_sets_the_password_and_signs_out_every_session(mono, mail):
    email, first = new_account(mono.url, "reset")
    second = login(mono.url, email, PASSWORD).body
    token = reset_token_for(mono, mail, email)

    # A password the policy refuses: 422 with the reason, the link still good.
    body = assert_problem(reset(mono.url, token, "aaaaaaaaaaaa"), 422)
    assert "two kinds" in body["detail"], body
    local = email.split("@")[0]
    body = assert_problem(reset(mono.url, token, local + "-Secret9"), 422)
    assert "email" in body["detail"], body

    r = reset(mono.url, token, NEW_PASSWORD)
    assert r.status == 200 and r.body == {"password_reset": True}, r

    assert_problem(login(mono.url, email, PASSWORD), 401)
    assert login(mono.url, email, NEW_PASSWORD).status == 200
    for old in (first, second):
        assert_problem(http("POST", mono.url + "/api/auth/refresh",
                            json_body={"refresh_token": old["refresh_token"]}), 401)
        wait_unauthorized(mono.url, old["access_token"])
    # The link works once: then it is gone.
    body = assert_problem(reset(mono.url, token, "Another-new-pw 3"), 410)
    assert "link" in body["detail"], body
    assert login(mono.url, email, NEW_PASSWORD).status == 200


def test_reset_unlocks_a_locked_account(mono, mail):
    email, _ = new_account(mono.url, "locked")
    for _ in range(3):
        assert_problem(login(mono.url, email, "Wrong password 1"), 401)
    assert_problem(login(mono.url, email, PASSWORD), 429)
    token = reset_token_for(mono, mail, email)
    assert reset(mono.url, token, NEW_PASSWORD).status == 200
    assert login(mono.url, email, NEW_PASSWORD).status == 200


def test_reset_rejects_bad_tokens_and_bodies(mono):
    url = mono.url + "/api/auth/password/reset"
    body = assert_problem(reset(mono.url, "C" * 43, NEW_PASSWORD), 410)
    assert "invalid" in body["detail"], body
    assert_problem(http("POST", url, json_body={"token": "C" * 43}), 400,
                   fields={"password"})
    assert_problem(http("POST", url, json_body={"password": NEW_PASSWORD}), 400,
                   fields={"token"})
    assert_problem(reset(mono.url, "C" * 43, "short"), 400, fields={"password"})
    assert_problem(reset(mono.url, "C" * 43, "x" * 129), 400, fields={"password"})


# ---------------------------------------------------------------------------
# Password change
# ---------------------------------------------------------------------------

def change(base, access, current, new):
    return http("POST", base + "/api/auth/password/change", headers=bearer(access),
                json_body={"current_password": current, "new_password": new})


def test_change_password_keeps_this_session_and_ends_the_others(mono):
    email, mine = new_account(mono.url, "change")
    other = login(mono.url, email, PASSWORD).body

    r = change(mono.url, mine["access_token"], PASSWORD, NEW_PASSWORD)
    assert r.status == 200 and r.body == {"password_changed": True}, r

    assert_problem(login(mono.url, email, PASSWORD), 401)
    assert login(mono.url, email, NEW_PASSWORD).status == 200
    # This session goes on ...
    assert me(mono.url, mine["access_token"]).status == 200
    r = http("POST", mono.url + "/api/auth/refresh",
             json_body={"refresh_token": mine["refresh_token"]})
    assert r.status == 200, r
    # ... the other one is over.
    assert_problem(http("POST", mono.url + "/api/auth/refresh",
                        json_body={"refresh_token": other["refresh_token"]}), 401)
    wait_unauthorized(mono.url, other["access_token"])


def test_change_password_failures(mono):
    email, tokens = new_account(mono.url, "chfail")
    access = tokens["access_token"]
    # A wrong current password is a failed authentication (401); a new
    # password that a rule refuses is unprocessable (422), not invalid.
    body = assert_problem(change(mono.url, access, "Not-the-password 9", NEW_PASSWORD), 401)
    assert "current password" in body["detail"], body
    body = assert_problem(change(mono.url, access, PASSWORD, PASSWORD), 422)
    assert "differ" in body["detail"], body
    body = assert_problem(change(mono.url, access, PASSWORD, "Password123"), 422)
    assert "too common" in body["detail"], body
    url = mono.url + "/api/auth/password/change"
    assert_problem(http("POST", url, headers=bearer(access), json_body={}), 400,
                   fields={"current_password", "new_password"})
    assert_problem(change(mono.url, access, PASSWORD, "short"), 400,
                   fields={"new_password"})
    assert_problem(http("POST", url), 401)
    # Nothing changed.
    assert login(mono.url, email, PASSWORD).status == 200


# ---------------------------------------------------------------------------
# The mailer
# ---------------------------------------------------------------------------

def metric(text, name, group="auth"):
    """name's value for group's series (a monolith's onboarding has a mail
    outbox of its own), or for the unlabelled one."""
    m = re.search(rf'^{name}{{[^}}]*group="{group}"[^}}]*}} (-?[0-9.e+]+)$', text, re.M) or \
        re.search(rf"^{name} (-?[0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else None


def metrics(base):
    r = http("GET", base + "/ops/auth/metrics")
    assert r.status == 200, r
    return r.body


def test_a_mail_the_api_refuses_is_not_retried(mono, mail):
    failed_before = metric(metrics(mono.url), "omnify_mail_failed_total") or 0
    email = unique_email("bounce")
    _, r = signup(mono.url, email=email, password=PASSWORD)
    assert r.status == 201, r
    deadline = time.monotonic() + 15
    while mail.attempts_to(email) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert mail.attempts_to(email) == 1
    time.sleep(3.0)  # a retry would come after ~1 s
    assert mail.attempts_to(email) == 1
    assert not mail.mails_to(email)
    assert metric(metrics(mono.url), "omnify_mail_failed_total") >= failed_before + 1


def test_mail_metrics(mono, mail):
    email, _ = new_account(mono.url, "metrics")
    mail.wait_mail(email)
    deadline = time.monotonic() + 10
    while True:
        text = metrics(mono.url)
        sent = metric(text, "omnify_mail_sent_total")
        if (sent or 0) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sent and sent >= 1, text
    assert metric(text, "omnify_mail_failed_total") is not None, text
    assert metric(text, "omnify_mail_queued") is not None, text


def test_zz_mails_were_well_formed_and_no_secret_was_logged(mono, mail):
    """Runs last: every request the mailer made had the right key and a body
    SendGrid accepts; no log line holds the key, a mailed token or a mail
    text."""
    assert mail.rejected == []
    assert mail.mails
    text = mono.log_text()
    assert MAIL_KEY not in text
    for m in mail.mails:
        for token in re.findall(TOKEN_RE, m["text"]):
            assert token not in text, "a mailed token was logged"
        assert m["text"] not in text
    for pw in (PASSWORD, NEW_PASSWORD):
        assert pw not in text
    # The mailer logs outbox ids and statuses.
    assert re.search(r"mail [0-9a-f-]{36}\.[a-z]+ sent \(HTTP 202", text), text[-2000:]
