"""What the integrations tests share (no tests here): the provider stand-ins
started for a module, the integrations group's settings pointing at them,
tenants with tokens, the OAuth dance as a browser does it, waits on syncs,
events read back from the topic (msgpack decoded), ground truth, and the
store read directly.

The stand-in (tests/providers) runs as a process of the module on a free
port; the group talks to it through the same base-URL settings it uses in
production (one per provider host)."""

import base64
import collections
import json
import os
import subprocess
import sys
import time
import urllib.parse
import uuid

from conftest import HOST, REPO, free_port, http, make_jwt, default_claims

sys.path.insert(0, os.path.join(REPO, "tests", "fault"))
from faultlib import Store  # noqa: E402  (the tiny OP_MSG client)
from mpack import mp_unpack  # noqa: E402

STANDIN_RUN = os.path.join(REPO, "tests", "providers", "run")
PROVIDERS = ["triplewhale", "hubspot", "klaviyo", "google_ads", "meta_ads",
             "linkedin_ads", "tiktok_ads", "youtube", "shopify", "stripe",
             "gohighlevel"]
# Our provider names -> the stand-in's path prefix and its provider name.
PREFIX = {"triplewhale": "triplewhale", "hubspot": "hubspot", "klaviyo": "klaviyo",
          "google_ads": "google-ads", "meta_ads": "meta", "linkedin_ads": "linkedin",
          "tiktok_ads": "tiktok", "youtube": "youtube", "shopify": "shopify",
          "stripe": "stripe", "gohighlevel": "gohighlevel"}
STANDIN_NAME = {"triplewhale": "triplewhale", "hubspot": "hubspot", "klaviyo": "klaviyo",
                "google_ads": "google_ads", "meta_ads": "meta", "linkedin_ads": "linkedin",
                "tiktok_ads": "tiktok", "youtube": "youtube", "shopify": "shopify",
                "stripe": "stripe", "gohighlevel": "gohighlevel"}
OAUTH = ["hubspot", "klaviyo", "google_ads", "meta_ads", "linkedin_ads", "tiktok_ads",
         "youtube", "shopify", "gohighlevel"]
TOKEN_KEY = base64.b64encode(b"integration-tests-key-0123456789").decode()
FRONTEND = "http://frontend.test/integrations"


# ---------------------------------------------------------------------------
# The stand-in
# ---------------------------------------------------------------------------

class Standin:
    """tests/providers/run as a process of a ProcessGroup."""

    def __init__(self, procs, name="standin"):
        port = free_port()
        self.proc = procs.start(name, [sys.executable, STANDIN_RUN, "--port", str(port),
                                       "--host", HOST])
        self.url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 60
        while "ready" not in self.proc.log_text():
            assert self.proc.alive(), self.proc.tail()
            assert time.monotonic() < deadline, "stand-in not ready: " + self.proc.tail()
            time.sleep(0.1)

    def base(self, provider):
        return f"{self.url}/{PREFIX[provider]}"

    def admin(self, method, path, body=None):
        r = http(method, f"{self.url}/_admin{path}", json_body=body, check_nosniff=False)
        assert r.status < 400, r
        return r.body

    def truth(self, provider, **q):
        return self.admin("GET", f"/truth/{PREFIX[provider]}?" + urllib.parse.urlencode(q))

    def counters(self, provider):
        return self.admin("GET", f"/counters?provider={PREFIX[provider]}")

    def config(self, provider, **changes):
        return self.admin("POST", f"/config/{PREFIX[provider]}", changes)["config"]

    def fault(self, provider, kind, **kw):
        return self.admin("POST", "/faults", dict(kw, provider=PREFIX[provider], kind=kind))

    def tokens(self, provider):
        return self.admin("GET", f"/tokens/{PREFIX[provider]}")["tokens"]

    def accounts(self, provider, user):
        return self.admin("GET", f"/accounts/{PREFIX[provider]}?user={user}")["accounts"]

    def webhook(self, **spec):
        spec["provider"] = PREFIX[spec["provider"]]
        return self.admin("POST", "/webhooks/send", spec)

    def public_key_b64(self):
        """GoHighLevel's webhook key as the setting takes it (the PEM's body)."""
        r = http("GET", f"{self.url}/gohighlevel/webhooks/public-key", check_nosniff=False)
        assert r.status == 200, r
        return "".join(ln for ln in r.raw.decode().splitlines() if not ln.startswith("-----"))

    def client(self, provider, what):
        name = STANDIN_NAME[provider]
        if what == "id":
            return f"omnify-{name}-client"
        return ("shpss_" if provider == "shopify" else "") + f"{name}-stand-in-secret"


def settings(standin, edge_url, **extra):
    """The integrations group's settings for the stand-in and this edge."""
    env = {
        "OMNIFY_INTEGRATIONS_PUBLIC_URL": edge_url,
        "OMNIFY_INTEGRATIONS_FRONTEND_URL": FRONTEND,
        "OMNIFY_INTEGRATIONS_TOKEN_KEYS": "k1:" + TOKEN_KEY,
        "OMNIFY_INTEGRATIONS_INITIAL_DAYS": "3",
        "OMNIFY_INTEGRATIONS_SHOPIFY_URL": standin.base("shopify") + "/{shop}",
        "OMNIFY_INTEGRATIONS_STRIPE_API_URL": standin.base("stripe"),
        "OMNIFY_INTEGRATIONS_STRIPE_WEBHOOK_SECRET": "whsec_standinstripesigningsecret0000",
        "OMNIFY_INTEGRATIONS_TRIPLEWHALE_API_URL": standin.base("triplewhale"),
        "OMNIFY_INTEGRATIONS_KLAVIYO_WEBHOOK_SECRET": "klaviyo-webhook-secret",
        "OMNIFY_INTEGRATIONS_GOHIGHLEVEL_WEBHOOK_KEY": standin.public_key_b64(),
    }
    names = {"hubspot": "HUBSPOT", "klaviyo": "KLAVIYO", "google_ads": "GOOGLE_ADS",
             "meta_ads": "META", "linkedin_ads": "LINKEDIN", "tiktok_ads": "TIKTOK",
             "youtube": "YOUTUBE", "gohighlevel": "GOHIGHLEVEL"}
    for p, n in names.items():
        env[f"OMNIFY_INTEGRATIONS_{n}_AUTH_URL"] = standin.base(p)
        env[f"OMNIFY_INTEGRATIONS_{n}_API_URL"] = standin.base(p)
    for p in ("google_ads", "youtube"):
        n = names[p]
        env[f"OMNIFY_INTEGRATIONS_{n}_TOKEN_URL"] = standin.base(p)
        env[f"OMNIFY_INTEGRATIONS_{n}_DEVELOPER_TOKEN"] = "standin-developer-token"
    ids = {"hubspot": ("HUBSPOT_CLIENT_ID", "HUBSPOT_CLIENT_SECRET"),
           "klaviyo": ("KLAVIYO_CLIENT_ID", "KLAVIYO_CLIENT_SECRET"),
           "google_ads": ("GOOGLE_ADS_CLIENT_ID", "GOOGLE_ADS_CLIENT_SECRET"),
           "youtube": ("YOUTUBE_CLIENT_ID", "YOUTUBE_CLIENT_SECRET"),
           "meta_ads": ("META_APP_ID", "META_APP_SECRET"),
           "linkedin_ads": ("LINKEDIN_CLIENT_ID", "LINKEDIN_CLIENT_SECRET"),
           "tiktok_ads": ("TIKTOK_APP_ID", "TIKTOK_SECRET"),
           "shopify": ("SHOPIFY_CLIENT_ID", "SHOPIFY_CLIENT_SECRET"),
           "gohighlevel": ("GOHIGHLEVEL_CLIENT_ID", "GOHIGHLEVEL_CLIENT_SECRET")}
    for p, (i, s) in ids.items():
        env["OMNIFY_INTEGRATIONS_" + i] = standin.client(p, "id")
        env["OMNIFY_INTEGRATIONS_" + s] = standin.client(p, "secret")
    env.update(extra)
    return env


# ---------------------------------------------------------------------------
# Tenants and calls
# ---------------------------------------------------------------------------

class Tenant:
    """A tenant with a user of each role's token."""

    def __init__(self, session, name="t"):
        self.session = session
        self.name = name
        self.id = str(uuid.uuid4())
        self.user = str(uuid.uuid4())

    def token(self, role="admin"):
        claims = default_claims(sub=self.user, tid=self.id, roles=(role,))
        claims["exp"] = int(time.time()) + 3600
        return make_jwt(self.session.jwt_secret, claims)

    def headers(self, role="admin"):
        return {"Authorization": "Bearer " + self.token(role)}


class Api:
    """The integrations routes of one edge; every reply is kept (the tests
    scan them for secrets)."""

    def __init__(self, url):
        self.url = url
        self.replies = []

    def call(self, method, path, tenant=None, role="admin", body=None, headers=None,
             raw=None):
        h = dict(headers or {})
        if tenant:
            h.update(tenant.headers(role))
        r = http(method, self.url + path, json_body=body, body=raw, headers=h,
                 timeout=60)
        self.replies.append(r)
        return r

    def connect(self, tenant, provider, user, shop=None, deny=False, role="admin"):
        """The OAuth dance as a browser: connect, the provider's authorize
        page (the stand-in's user `user` clicks Allow), the callback. Returns
        the callback's Response (a 302 to the front end)."""
        r = self.call("POST", f"/api/integrations/{provider}/connect", tenant, role,
                      body={"shop": shop} if shop else {})
        assert r.status == 200, r
        url = r.body["authorize_url"] + "&stand_in_user=" + user
        if deny:
            url += "&stand_in_deny=1"
        a = http("GET", url, check_nosniff=False)
        assert a.status == 302, a
        cb = a.header("Location")
        assert cb.startswith(self.url + f"/api/integrations/{provider}/callback"), cb
        r = http("GET", cb, timeout=60)
        self.replies.append(r)
        return r

    def connections(self, tenant, provider=None, role="viewer"):
        q = f"?provider={provider}" if provider else ""
        for _ in range(3):  # a loaded shared store can hold a read past the wait
            r = self.call("GET", "/api/integrations/connections" + q, tenant, role,
                          headers={"Prefer": "wait=40"})
            if r.status not in (503, 504):
                break
        assert r.status == 200, r
        return r.body["connections"]

    def wait_synced(self, tenant, provider, n=1, timeout=120, status="completed"):
        """Wait until n connections of provider have a last sync with this
        status; returns them."""
        deadline = time.monotonic() + timeout
        conns = []
        while time.monotonic() < deadline:
            conns = [c for c in self.connections(tenant, provider)
                     if c.get("last_sync_status") == status]
            if len(conns) >= n:
                return conns
            time.sleep(0.5)
        raise AssertionError(f"{provider}: {len(conns)} of {n} synced ({status}) after "
                             f"{timeout}s: {self.connections(tenant, provider)}")

    def wait_sync(self, tenant, sync_id, timeout=180):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.call("GET", f"/api/integrations/syncs/{sync_id}", tenant, "viewer")
            if last.status == 200 and last.body["status"] != "running":
                return last.body
            time.sleep(0.5)
        raise AssertionError(f"sync {sync_id} still running after {timeout}s: {last!r}")


def location_query(r):
    """The query of a redirect's Location, as a dict."""
    loc = r.header("Location") or ""
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query).items()}


# ---------------------------------------------------------------------------
# Events on the topic
# ---------------------------------------------------------------------------

Event = collections.namedtuple("Event", "headers body key raw")


def brokers(session):
    return session.env().get("OMNIFY_KAFKA_BROKERS", "127.0.0.1:9092")


def read_events(session, topic="integrations.events"):
    """Every record of the session's topic (all partitions, from the
    beginning) as Events."""
    r = subprocess.run(["kcat", "-C", "-b", brokers(session), "-t", session.topic_prefix + topic,
                        "-o", "beginning", "-e", "-q", "-J"],
                       capture_output=True, text=True, errors="surrogateescape", timeout=120)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        h = rec.get("headers") or []
        payload = (rec.get("payload") or "").encode("utf-8", "surrogateescape")
        out.append(Event({h[i]: h[i + 1] for i in range(0, len(h) - 1, 2)},
                         mp_unpack(payload), rec.get("key"), payload))
    return out


def events_of(events, type_prefix, tenant=None, **match):
    """The events whose type starts with type_prefix (and of tenant), with
    body fields equal to match."""
    return [e for e in events if e.headers.get("type", "").startswith(type_prefix)
            and (tenant is None or e.headers.get("tenant") == tenant.id)
            and all(e.body.get(k) == v for k, v in match.items())]


def latest(events, key):
    """Per object (key(body)), the body with the highest observed_ms: what a
    follower keeps."""
    out = {}
    for e in events:
        k = key(e.body)
        if k not in out or e.body["observed_ms"] >= out[k]["observed_ms"]:
            out[k] = e.body
    return out


def wait_events(session, pred, timeout=60):
    deadline = time.monotonic() + timeout
    evs = []
    while time.monotonic() < deadline:
        evs = read_events(session)
        if pred(evs):
            return evs
        time.sleep(1)
    raise AssertionError(f"events not there after {timeout}s ({len(evs)} read)")


# ---------------------------------------------------------------------------
# The store, read directly
# ---------------------------------------------------------------------------

def store(session):
    uri = urllib.parse.urlsplit(session.env().get("OMNIFY_MONGO_URI", "mongodb://127.0.0.1:27017"))
    return Store(uri.hostname or "127.0.0.1", uri.port or 27017)


def store_docs(session, coll):
    st = store(session)
    try:
        return st.find_all(session.db_prefix + "integrations", coll)
    finally:
        st.close()


def today():
    return time.strftime("%Y-%m-%d", time.gmtime())


def day_shift(day, n):
    t = time.mktime(time.strptime(day, "%Y-%m-%d")) + n * 86400 + 43200
    return time.strftime("%Y-%m-%d", time.gmtime(t))
