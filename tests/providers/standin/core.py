"""What every stand-in shares: the clock, deterministic numbers, requests and
replies, counters, fault rules, OAuth grants and tokens, rate limiters, and
the Provider base class that runs a request through them."""

import base64
import collections
import datetime as dt
import hashlib
import json
import math
import re
import secrets
import threading
import time
import urllib.parse

LOCK = threading.RLock()


# ---------------------------------------------------------------------------
# Clock: real time plus an offset a test can move (tokens expire, days pass)
# ---------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.offset = 0.0

    def now(self):
        return time.time() + self.offset

    def today(self):
        return dt.datetime.fromtimestamp(self.now(), dt.timezone.utc).date()

    def set_today(self, day):
        """Moves the clock so that today (UTC) is `day`, keeping the time of day."""
        real = dt.datetime.fromtimestamp(time.time(), dt.timezone.utc)
        target = dt.datetime.combine(day, real.time(), dt.timezone.utc)
        self.offset = target.timestamp() - time.time()


CLOCK = Clock()


def iso(ts):
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(ts):
    d = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


def parse_day(text):
    return dt.date.fromisoformat(text)


def parse_time(text):
    """ISO 8601 with or without zone (UTC assumed) -> epoch seconds."""
    t = text.strip().replace("Z", "+00:00")
    if len(t) == 10:
        t += "T00:00:00+00:00"
    d = dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return d.timestamp()


# ---------------------------------------------------------------------------
# Deterministic numbers: everything in a data set derives from ids
# ---------------------------------------------------------------------------

def digest(*parts):
    return hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=32).digest()


def det(*parts):
    """A 64-bit integer fixed by its parts."""
    return int.from_bytes(digest(*parts)[:8], "big")


def detf(*parts):
    """A float in [0, 1) fixed by its parts."""
    return det(*parts) / 2.0 ** 64


def detfs(n, *parts):
    """n floats in [0, 1) fixed by their parts (one hash for up to 8)."""
    d = digest(*parts)
    out = [int.from_bytes(d[4 * i:4 * i + 4], "big") / 2.0 ** 32 for i in range(min(n, 8))]
    return out


def digits(n, *parts):
    """A decimal id of n digits, not starting with 0, fixed by its parts."""
    lo = 10 ** (n - 1)
    return str(lo + det(*parts) % (9 * lo))


def new_secret(prefix="", n=24):
    return prefix + secrets.token_urlsafe(n)


def request_id():
    return secrets.token_hex(12)


# ---------------------------------------------------------------------------
# Requests and replies
# ---------------------------------------------------------------------------

class Request:
    def __init__(self, method, path, query, headers, body, base_url, prefix):
        self.method = method
        self.path = path            # below the provider's prefix, starts with /
        self.query = query          # dict name -> list of values
        self.headers = headers      # case-insensitive (email.message.Message)
        self.body = body
        self.base_url = base_url    # http://host:port + prefix, as the client sees it
        self.prefix = prefix
        self.endpoint = None
        self.params = {}

    def q(self, name, default=None):
        v = self.query.get(name)
        return v[0] if v else default

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    def form(self):
        return {k: v[0] for k, v in
                urllib.parse.parse_qs(self.body.decode("utf-8", "replace"),
                                      keep_blank_values=True).items()}

    def form_or_json(self):
        ctype = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            j = self.json()
            return j if isinstance(j, dict) else {}
        return self.form()

    def bearer(self):
        auth = self.header("Authorization") or ""
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return None


class Reply(Exception):
    """A finished answer; raised from anywhere in a handler."""

    def __init__(self, status, body=b"", headers=None, ctype="application/json"):
        super().__init__(status)
        self.status = status
        if isinstance(body, (dict, list)):
            body = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.body = body
        self.headers = list(headers or [])
        if body and ctype and not any(k.lower() == "content-type" for k, _ in self.headers):
            self.headers.append(("Content-Type", ctype))
        self.stream = None          # an iterator of bytes for Server-Sent Events
        self.close = False          # drop the connection without an answer

    def add(self, name, value):
        self.headers.append((name, str(value)))
        return self


def redirect(url, params):
    sep = "&" if "?" in url else "?"
    return Reply(302, b"", [("Location", url + sep + urllib.parse.urlencode(params))])


# ---------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------

class Counters:
    NAMES = ("requests", "statuses", "violations", "retry_after_ignored", "refreshes",
             "refresh_reuse", "code_reuse", "tokens_issued", "revocations", "idempotency",
             "faults", "webhooks_sent", "auth_failures", "billed", "usage", "mails")

    def __init__(self):
        self.reset()

    def reset(self):
        with LOCK:
            self.c = {n: collections.defaultdict(collections.Counter) for n in self.NAMES}

    def add(self, name, provider, key="total", n=1):
        with LOCK:
            self.c[name][provider][key] += n

    def get(self, name, provider, key="total"):
        with LOCK:
            return self.c[name][provider][key]

    def snapshot(self, provider=None):
        with LOCK:
            out = {}
            for name, per in self.c.items():
                if provider:
                    out[name] = dict(per.get(provider, {}))
                else:
                    out[name] = {p: dict(c) for p, c in per.items() if c}
            return out


COUNTERS = Counters()


# ---------------------------------------------------------------------------
# Fault rules
# ---------------------------------------------------------------------------

class Faults:
    """Per provider: rules {kind: 5xx|slow|malformed|drop, count, match, status,
    delay_ms}; count -1 is for ever. Revoked and expired tokens are state
    changes, made at once by the admin API, not rules."""

    def __init__(self):
        self.rules = collections.defaultdict(list)

    def reset(self, provider=None):
        with LOCK:
            if provider:
                self.rules.pop(provider, None)
            else:
                self.rules.clear()

    def add(self, provider, rule):
        with LOCK:
            self.rules[provider].append(dict(rule))

    def take(self, provider, path):
        """The rules that fire for this request (their counts go down)."""
        fired = []
        with LOCK:
            keep = []
            for r in self.rules.get(provider, []):
                ended = any(f["kind"] in ("5xx", "drop") for f in fired)
                if ended or (r.get("match") and r["match"] not in path):
                    keep.append(r)
                    continue
                fired.append(dict(r))
                if r.get("count", 1) < 0:
                    keep.append(r)
                elif r.get("count", 1) > 1:
                    r["count"] = r.get("count", 1) - 1
                    keep.append(r)
            self.rules[provider] = keep
        return fired

    def list(self):
        with LOCK:
            return {p: [dict(r) for r in rs] for p, rs in self.rules.items() if rs}


FAULTS = Faults()


# ---------------------------------------------------------------------------
# Rate limiters
# ---------------------------------------------------------------------------

class Sliding:
    """At most `limit` requests in any `window` seconds (a rolling log)."""

    def __init__(self, limit, window):
        self.limit, self.window = limit, window
        self.log = collections.defaultdict(collections.deque)

    def _trim(self, key, now):
        q = self.log[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def hit(self, key):
        """(allowed, remaining, seconds until a slot frees)."""
        now = CLOCK.now()
        with LOCK:
            q = self._trim(key, now)
            if len(q) >= self.limit:
                return False, 0, max(0.0, q[0] + self.window - now)
            q.append(now)
            reset = q[0] + self.window - now
            return True, self.limit - len(q), reset

    def peek(self, key):
        now = CLOCK.now()
        with LOCK:
            q = self._trim(key, now)
            return self.limit - len(q), (q[0] + self.window - now) if q else 0.0


class Daily:
    """At most `limit` requests per UTC day."""

    def __init__(self, limit):
        self.limit = limit
        self.count = collections.Counter()

    def hit(self, key):
        k = (key, CLOCK.today())
        with LOCK:
            if self.count[k] >= self.limit:
                return False, 0
            self.count[k] += 1
            return True, self.limit - self.count[k]

    def seconds_to_midnight(self):
        now = CLOCK.now()
        return 86400 - now % 86400


class Bucket:
    """A leaky bucket of `capacity` points refilled at `rate` points/s."""

    def __init__(self, capacity, rate):
        self.capacity, self.rate = float(capacity), float(rate)
        self.state = {}

    def level(self, key):
        now = CLOCK.now()
        with LOCK:
            avail, t = self.state.get(key, (self.capacity, now))
            avail = min(self.capacity, avail + (now - t) * self.rate)
            self.state[key] = (avail, now)
            return avail

    def take(self, key, cost):
        """(allowed, available after); nothing is taken when not allowed."""
        with LOCK:
            avail = self.level(key)
            if cost > avail:
                return False, avail
            self.state[key] = (avail - cost, CLOCK.now())
            return True, avail - cost

    def give(self, key, points):
        with LOCK:
            avail = self.level(key)
            self.state[key] = (min(self.capacity, avail + points), CLOCK.now())


class RetryAfter:
    """Remembers the Retry-After told to a client, to count requests made
    before it ran out."""

    def __init__(self):
        self.until = {}

    def told(self, provider, key, seconds):
        with LOCK:
            self.until[(provider, key)] = CLOCK.now() + seconds

    def check(self, provider, key):
        with LOCK:
            t = self.until.get((provider, key))
            if t and CLOCK.now() < t - 0.05:
                COUNTERS.add("retry_after_ignored", provider)

    def reset(self):
        with LOCK:
            self.until.clear()


RETRY_AFTER = RetryAfter()


# ---------------------------------------------------------------------------
# OAuth grants and tokens
# ---------------------------------------------------------------------------

class Token:
    __slots__ = ("value", "kind", "provider", "grant", "expires", "revoked", "issued",
                 "rotated_at", "successor")

    def __init__(self, value, kind, provider, grant, ttl):
        now = CLOCK.now()
        self.value, self.kind, self.provider, self.grant = value, kind, provider, grant
        self.issued = now
        self.expires = now + ttl if ttl else None
        self.revoked = False
        self.rotated_at = None
        self.successor = None

    def expires_in(self):
        return None if self.expires is None else math.ceil(self.expires - CLOCK.now())


class Grant:
    """What a user consented to: client, user, scopes, accounts."""

    def __init__(self, provider, client_id, user, scope, extra=None):
        self.id = new_secret("g", 9)
        self.provider, self.client_id, self.user, self.scope = provider, client_id, user, scope
        self.extra = dict(extra or {})
        self.revoked = False


def pkce_ok(challenge, method, verifier):
    if not challenge:
        return True
    if not verifier:
        return False
    if (method or "plain") == "S256":
        calc = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        return secrets.compare_digest(calc.decode(), challenge)
    return secrets.compare_digest(verifier, challenge)


class Tokens:
    def __init__(self):
        self.reset()

    def reset(self, provider=None):
        with LOCK:
            if provider is None:
                self.codes, self.tokens = {}, {}
                return
            self.codes = {k: v for k, v in self.codes.items() if v["grant"].provider != provider}
            self.tokens = {k: v for k, v in self.tokens.items() if v.provider != provider}

    def new_code(self, grant, redirect_uri, challenge=None, method=None, ttl=600):
        code = new_secret("", 18)
        with LOCK:
            self.codes[code] = {"grant": grant, "redirect_uri": redirect_uri,
                                "challenge": challenge, "method": method,
                                "expires": CLOCK.now() + ttl, "used": False}
        return code

    def redeem(self, provider, code, client_id, redirect_uri=None, verifier=None):
        """(grant, None) or (None, reason) with reason in invalid, used,
        expired, client, redirect, pkce."""
        with LOCK:
            c = self.codes.get(code or "")
            if not c or c["grant"].provider != provider:
                return None, "invalid"
            if c["used"]:
                COUNTERS.add("code_reuse", provider)
                # A code used twice revokes what it gave (RFC 6749 4.1.2).
                self.revoke_grant(c["grant"])
                return None, "used"
            if CLOCK.now() > c["expires"]:
                return None, "expired"
            if client_id is not None and c["grant"].client_id != client_id:
                return None, "client"
            if redirect_uri is not None and c["redirect_uri"] and c["redirect_uri"] != redirect_uri:
                return None, "redirect"
            if not pkce_ok(c["challenge"], c["method"], verifier):
                return None, "pkce"
            c["used"] = True
            return c["grant"], None

    def issue(self, grant, access_ttl, refresh_ttl=None, refresh=True, prefix="", rprefix=""):
        """A new access token (and refresh token when `refresh`)."""
        with LOCK:
            a = Token(new_secret(prefix), "access", grant.provider, grant, access_ttl)
            self.tokens[a.value] = a
            r = None
            if refresh:
                r = Token(new_secret(rprefix), "refresh", grant.provider, grant, refresh_ttl)
                self.tokens[r.value] = r
            COUNTERS.add("tokens_issued", grant.provider)
            return a, r

    def check(self, provider, value, kind="access"):
        """(token, None) or (None, reason): invalid, revoked, expired."""
        with LOCK:
            t = self.tokens.get(value or "")
            if not t or t.provider != provider or t.kind != kind:
                return None, "invalid"
            if t.revoked or t.grant.revoked:
                return None, "revoked"
            if t.expires is not None and CLOCK.now() >= t.expires:
                return t, "expired"
            return t, None

    def refresh(self, provider, value, client_id, access_ttl, refresh_ttl, rotate, grace,
                prefix="", rprefix=""):
        """(access, refresh, None) or (None, None, reason). A rotated refresh
        token is single use: a second use within `grace` seconds is counted as
        reuse and answered; after that it is refused."""
        with LOCK:
            t, why = self.check(provider, value, "refresh")
            if why:
                return None, None, why
            if client_id is not None and t.grant.client_id != client_id:
                return None, None, "client"
            if t.rotated_at is not None:
                COUNTERS.add("refresh_reuse", provider)
                if CLOCK.now() - t.rotated_at > grace:
                    return None, None, "reused"
            COUNTERS.add("refreshes", provider)
            if not rotate:
                a, _ = self.issue(t.grant, access_ttl, refresh=False, prefix=prefix)
                return a, t, None
            a, r = self.issue(t.grant, access_ttl, refresh_ttl, True, prefix, rprefix)
            if t.rotated_at is None:
                t.rotated_at = CLOCK.now()
            t.successor = r.value
            return a, r, None

    def revoke_token(self, provider, value):
        """Revokes the grant a token belongs to (all its tokens)."""
        with LOCK:
            t = self.tokens.get(value or "")
            if not t or t.provider != provider:
                return False
            self.revoke_grant(t.grant)
            return True

    def revoke_grant(self, grant):
        with LOCK:
            grant.revoked = True
            COUNTERS.add("revocations", grant.provider)

    def revoke_all(self, provider, user=None):
        n = 0
        with LOCK:
            for t in self.tokens.values():
                if t.provider == provider and (user is None or t.grant.user == user) \
                        and not t.grant.revoked:
                    self.revoke_grant(t.grant)
                    n += 1
        return n

    def expire_all(self, provider, user=None, kind="access"):
        n = 0
        with LOCK:
            for t in self.tokens.values():
                if t.provider == provider and t.kind == kind and \
                        (user is None or t.grant.user == user):
                    t.expires = CLOCK.now() - 1
                    n += 1
        return n

    def grants(self, provider):
        with LOCK:
            seen = {}
            for t in self.tokens.values():
                if t.provider == provider:
                    seen[t.grant.id] = t.grant
            return list(seen.values())


TOKENS = Tokens()


# ---------------------------------------------------------------------------
# API keys (Stripe, TripleWhale, Klaviyo private keys)
# ---------------------------------------------------------------------------

class Keys:
    """Keys registered by tests (with what they reach), keys revoked."""

    def __init__(self):
        self.reset()

    def reset(self):
        with LOCK:
            self.known, self.revoked = {}, set()

    def register(self, provider, key, info):
        with LOCK:
            self.known[(provider, key)] = dict(info or {})
            self.revoked.discard((provider, key))

    def revoke(self, provider, key=None):
        with LOCK:
            if key is None:
                self.revoked.update(k for k in self.known if k[0] == provider)
                self.revoked.add((provider, "*"))
            else:
                self.revoked.add((provider, key))

    def lookup(self, provider, key, pattern):
        """(info, None) or (None, reason): invalid, revoked."""
        with LOCK:
            if (provider, key) in self.revoked or (provider, "*") in self.revoked:
                return None, "revoked"
            if (provider, key) in self.known:
                return self.known[(provider, key)], None
        if key and re.fullmatch(pattern, key):
            return {}, None
        return None, "invalid"


KEYS = Keys()


# ---------------------------------------------------------------------------
# The provider base class
# ---------------------------------------------------------------------------

class Provider:
    """A stand-in: `name`, `routes` [(method, regex, handler name)], its
    defaults (lifetimes, limits, client), and its error shapes."""

    name = "?"
    routes = []
    defaults = {}
    client_secret_prefix = ""
    uses_keys = False

    def __init__(self):
        self.compiled = [(m, re.compile(p + r"\Z"), h) for m, p, h in self.routes]
        self.reset()

    def reset(self):
        base = {"client_id": f"omnify-{self.name}-client",
                "client_secret": f"{self.client_secret_prefix}{self.name}-stand-in-secret",
                "access_ttl": 3600, "refresh_ttl": None, "code_ttl": 600,
                "rotate_refresh": False, "refresh_grace_s": 0,
                "webhook_secret": f"{self.name}-webhook-secret"}
        base.update(self.defaults)
        self.config = base
        self.setup()

    def setup(self):
        """Per-provider state (limiters); called on reset."""

    def configure(self, changes):
        unknown = [k for k in changes if k not in self.config]
        if unknown:
            raise Reply(400, {"error": f"unknown settings for {self.name}: {unknown}",
                              "known": sorted(self.config)})
        self.config.update(changes)
        self.setup()

    def truth(self, req):
        raise Reply(400, {"error": f"{self.name} holds no data set"})

    def accounts_view(self, user):
        return []

    # --- errors every provider must shape its own way ---
    def server_error(self, req, status):
        return Reply(status, {"error": "internal error"})

    def not_found(self, req):
        return Reply(404, {"error": "not found"})

    # --- the pipeline ---
    def route(self, req):
        allowed = []
        for method, rx, handler in self.compiled:
            m = rx.match(req.path)
            if m:
                if method != req.method:
                    allowed.append(method)
                    continue
                req.params = m.groupdict()
                req.endpoint = f"{method} {rx.pattern[:-2]}"
                return getattr(self, handler)
        if allowed:
            req.endpoint = f"{req.method} {req.path}"
            return lambda r: self.method_not_allowed(r, allowed)
        return None

    def method_not_allowed(self, req, allowed):
        return Reply(405, self.not_found(req).body, [("Allow", ", ".join(allowed))])

    def handle(self, req):
        handler = self.route(req)
        key = req.endpoint or f"{req.method} (no route)"
        COUNTERS.add("requests", self.name, key)
        COUNTERS.add("requests", self.name)
        idem = req.header("Idempotency-Key")
        if idem:
            COUNTERS.add("idempotency", self.name, idem)
        if handler is None:
            return self.not_found(req)
        malformed = False
        for rule in FAULTS.take(self.name, req.path):
            COUNTERS.add("faults", self.name, rule["kind"])
            if rule["kind"] == "slow":
                time.sleep(rule.get("delay_ms", 2000) / 1000.0)
            elif rule["kind"] == "5xx":
                return self.server_error(req, int(rule.get("status", 500)))
            elif rule["kind"] == "drop":
                r = Reply(0)
                r.close = True
                return r
            elif rule["kind"] == "malformed":
                malformed = True
        try:
            reply = handler(req)
        except Reply as r:
            reply = r
        if malformed and reply.body:
            reply.body = reply.body[: max(1, len(reply.body) // 2)]
        return reply

    # --- helpers for handlers ---
    def rate_limited(self, key, retry_after):
        COUNTERS.add("violations", self.name)
        COUNTERS.add("violations", self.name, key)
        RETRY_AFTER.told(self.name, key, retry_after)

    def grant_for(self, req, client_id, scope, extra=None):
        """The user consenting on the authorize page: `login_hint` (or the
        stand-in's own `stand_in_user`) names them; default "demo". The
        stand-in answers at once, as a user who clicks Allow would."""
        user = req.q("stand_in_user") or req.q("login_hint") or "demo"
        return Grant(self.name, client_id, user, scope, extra)

    def deny_requested(self, req):
        return req.q("stand_in_deny") is not None


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cursor_encode(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def cursor_decode(text):
    try:
        return json.loads(unb64url(text))
    except (ValueError, TypeError):
        return None
