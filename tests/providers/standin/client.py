"""For tests: start the stand-ins in this process (or reach a running one),
call them and their admin API, and MailServer, a drop-in for the SendGrid
look-alikes of tests/integration and tests/fault."""

import base64
import hashlib
import http.client
import json
import secrets
import time
import urllib.parse

from . import server


def http_call(method, url, body=None, headers=None, form=None, timeout=30):
    """(status, headers dict (lower-case names), body bytes); never raises on
    HTTP errors, and never follows redirects."""
    parts = urllib.parse.urlsplit(url)
    headers = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        path = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def jbody(raw):
    return json.loads(raw) if raw else None


def pkce_pair():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Standin:
    def __init__(self, url=None, port=0):
        self.app = None
        if url is None:
            self.app = server.build(port=port)
            url = self.app.url
        self.url = url.rstrip("/")

    def stop(self):
        if self.app:
            self.app.stop()

    def base(self, prefix):
        return f"{self.url}/{prefix}"

    def call(self, method, url, **kw):
        return http_call(method, url, **kw)

    def admin(self, method, path, body=None):
        status, _h, raw = http_call(method, f"{self.url}/_admin{path}", body=body)
        out = jbody(raw)
        if status >= 400:
            raise AssertionError(f"admin {method} {path}: {status} {out}")
        return out

    def reset(self, provider=None):
        return self.admin("POST", "/reset", {"provider": provider} if provider else None)

    def config(self, provider, **changes):
        return self.admin("POST", f"/config/{provider}", changes)["config"]

    def fault(self, provider, kind, **kw):
        return self.admin("POST", "/faults", dict(kw, provider=provider, kind=kind))

    def counters(self, provider=None):
        return self.admin("GET", "/counters" + (f"?provider={provider}" if provider else ""))

    def truth(self, provider, **q):
        return self.admin("GET", f"/truth/{provider}?" + urllib.parse.urlencode(q))

    def accounts(self, provider, user="demo"):
        return self.admin("GET", f"/accounts/{provider}?user={user}")["accounts"]

    def webhook(self, **spec):
        return self.admin("POST", "/webhooks/send", spec)

    def clock(self, **kw):
        return self.admin("POST", "/clock", kw)

    def authorize(self, url, params):
        """Follows an authorize URL as a browser whose user clicks Allow; the
        query of the redirect back (code, state, ...)."""
        status, headers, raw = http_call("GET", url + "?" + urllib.parse.urlencode(params))
        assert status == 302, (status, raw[:300])
        loc = urllib.parse.urlsplit(headers["location"])
        return {k: v[0] for k, v in urllib.parse.parse_qs(loc.query).items()}


class MailServer:
    """The API of test_auth_recovery.MailServer and faultlib.FakeMail over the
    SendGrid stand-in: url (the base URL to give OMNIFY_MAIL_BASE_URL), start,
    stop, set_mode, mails, rejected, attempts, mails_to, attempts_to,
    wait_mail; `requests` counts the accepted mails."""

    def __init__(self, api_key="SG.standin-key", port=None):
        self.api_key, self.port = api_key, port or 0
        self.app = None
        self.url = None

    def start(self):
        self.app = server.build(port=self.port)
        self.port = self.app.port
        self.sg = self.app.providers["sendgrid"]
        self.sg.configure({"api_key": self.api_key})
        self.url = f"{self.app.url}/sendgrid"
        return self

    def stop(self):
        if self.app:
            self.app.stop()
            self.app = None

    def set_mode(self, mode):
        self.sg.set_mode(mode)

    @property
    def mails(self):
        return list(self.sg.mails)

    @property
    def rejected(self):
        return list(self.sg.rejected)

    @property
    def attempts(self):
        return dict(self.sg.attempts)

    @property
    def requests(self):
        return len(self.sg.mails)

    def mails_to(self, to, contains=""):
        return [m for m in self.sg.mails if m["to"] == to.lower() and contains in m["text"]]

    def attempts_to(self, to):
        return self.sg.attempts.get(to.lower(), 0)

    def wait_mail(self, to, count=1, timeout=20.0, contains=""):
        deadline = time.monotonic() + timeout
        with self.sg.cond:
            while True:
                got = self.mails_to(to, contains)
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    break
                self.sg.cond.wait(min(left, 0.5))
        assert len(got) >= count, (f"{len(got)} mail(s) to {to} after {timeout}s, wanted {count}; "
                                   f"attempts {self.attempts_to(to)}; rejected {self.rejected}")
        return got[:count]
