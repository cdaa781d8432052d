"""Klaviyo: private API keys (Klaviyo-API-Key pk_...) or OAuth with PKCE
(S256 required) and revocation; the revision header; JSON:API documents with
links.next cursors (page[cursor], page[size]) and filter=...(updated|datetime,...);
per-endpoint rate tiers (burst per second and steady per minute) with
RateLimit-* headers and 429 + Retry-After; Klaviyo-Signature webhooks."""

import base64
import hashlib
import hmac
import json
import re
import urllib.parse

from . import data
from .core import (CLOCK, COUNTERS, KEYS, RETRY_AFTER, TOKENS, Provider, Reply, Sliding,
                   cursor_decode, cursor_encode, iso, parse_time, redirect, request_id)

KEY_PATTERN = r"pk_[A-Za-z0-9]{20,}"
# tier: (burst per second, steady per minute)
TIERS = {"XS": (1, 15), "S": (3, 60), "M": (10, 150), "L": (75, 700), "XL": (350, 3500)}
ENDPOINT_TIER = {"accounts": "XS", "profiles": "L", "events": "XL", "metrics": "M"}
PAGE_SIZE = {"profiles": (20, 100), "events": (200, 200), "metrics": (200, 200), "accounts": (1, 1)}


class Klaviyo(Provider):
    name = "klaviyo"
    uses_keys = True
    defaults = {"access_ttl": 3600, "refresh_ttl": None, "rotate_refresh": False,
                "revisions": ["2024-02-15", "2024-07-15", "2024-10-15", "2025-01-15",
                              "2025-04-15", "2025-07-15", "2025-10-15"],
                "tier_scale": 1.0}
    routes = [
        ("GET", r"/oauth/authorize", "authorize"),
        ("POST", r"/oauth/token", "token"),
        ("POST", r"/oauth/revoke", "revoke"),
        ("GET", r"/api/(?P<kind>accounts|profiles|events|metrics)/?", "listing"),
    ]

    def setup(self):
        s = self.config["tier_scale"]
        self.limits = {ep: (Sliding(max(1, int(TIERS[t][0] * s)), 1.0), Sliding(max(1, int(TIERS[t][1] * s)), 60.0))
                       for ep, t in ENDPOINT_TIER.items()}

    def errors(self, status, code, title, detail, pointer=None):
        e = {"id": request_id(), "status": status, "code": code, "title": title, "detail": detail,
             "source": {"pointer": pointer or "/data/"}, "links": {}, "meta": {}}
        return Reply(status, {"errors": [e]}, ctype="application/vnd.api+json")

    def server_error(self, req, status):
        return self.errors(status, "error", "A server error occurred.", "A server error occurred.")

    def not_found(self, req):
        return self.errors(404, "not_found", "Not found.", "The requested resource was not found.")

    # --- OAuth with PKCE ---
    def authorize(self, req):
        redirect_uri = req.q("redirect_uri")
        if req.q("client_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "Invalid client_id or redirect_uri", ctype="text/html")
        if req.q("code_challenge_method") != "S256" or not req.q("code_challenge"):
            return redirect(redirect_uri, {"error": "invalid_request", "error_description":
                                           "code_challenge with code_challenge_method=S256 is required",
                                           "state": req.q("state", "")})
        if self.deny_requested(req):
            return redirect(redirect_uri, {"error": "access_denied", "state": req.q("state", "")})
        grant = self.grant_for(req, req.q("client_id"), req.q("scope", ""))
        code = TOKENS.new_code(grant, redirect_uri, req.q("code_challenge"), "S256", self.config["code_ttl"])
        return redirect(redirect_uri, {"code": code, "state": req.q("state", "")})

    def client_ok(self, req):
        auth = req.header("Authorization") or ""
        try:
            cid, secret = base64.b64decode(auth[6:]).decode().split(":", 1) if auth[:6].lower() == "basic " else ("", "")
        except (ValueError, UnicodeDecodeError):
            return False
        return cid == self.config["client_id"] and secret == self.config["client_secret"]

    def token(self, req):
        if not self.client_ok(req):
            return Reply(401, {"error": "invalid_client"})
        f, cfg = req.form(), self.config
        if f.get("grant_type") == "refresh_token":
            a, r, why = TOKENS.refresh(self.name, f.get("refresh_token"), cfg["client_id"],
                                       cfg["access_ttl"], cfg["refresh_ttl"], cfg["rotate_refresh"],
                                       cfg["refresh_grace_s"])
            if why:
                return Reply(400, {"error": "invalid_grant"})
        elif f.get("grant_type") == "authorization_code":
            grant, why = TOKENS.redeem(self.name, f.get("code"), cfg["client_id"], f.get("redirect_uri"),
                                       f.get("code_verifier"))
            if why:
                return Reply(400, {"error": "invalid_grant", "error_description":
                                   "code_verifier does not match" if why == "pkce" else "invalid code"})
            a, r = TOKENS.issue(grant, cfg["access_ttl"], cfg["refresh_ttl"])
        else:
            return Reply(400, {"error": "unsupported_grant_type"})
        return Reply(200, {"access_token": a.value, "token_type": "Bearer", "expires_in": a.expires_in(),
                           "refresh_token": r.value, "scope": a.grant.scope})

    def revoke(self, req):
        if not self.client_ok(req):
            return Reply(401, {"error": "invalid_client"})
        TOKENS.revoke_token(self.name, req.form().get("token"))
        return Reply(200, b"", ctype=None)

    # --- API ---
    def auth(self, req, kind):
        revision = req.header("revision")
        if not revision:
            raise self.errors(400, "invalid", "Invalid input.", "The 'revision' header is missing.")
        if revision.split(".")[0] not in self.config["revisions"]:
            raise self.errors(400, "invalid", "Invalid input.", f"Invalid revision '{revision}'.")
        auth = req.header("Authorization") or ""
        if auth.startswith("Klaviyo-API-Key "):
            key = auth[len("Klaviyo-API-Key "):].strip()
            info, why = KEYS.lookup(self.name, key, KEY_PATTERN)
            account = (info or {}).get("account") or data.accounts_of("klaviyo", "key-" + key[3:11])[0]
        else:
            t, why = TOKENS.check(self.name, req.bearer())
            account = data.accounts_of("klaviyo", t.grant.user)[0] if t else None
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            raise self.errors(401, "not_authenticated", "Authentication credentials were not provided.",
                              "Missing or invalid private key." if why != "expired" else "Access token expired.")
        burst, steady = self.limits[kind]
        key = f"{account}:{kind}"
        RETRY_AFTER.check(self.name, key)
        ok1, rem1, reset1 = burst.hit(key)
        ok2, rem2, reset2 = (steady.hit(key) if ok1 else (True,) + steady.peek(key))
        headers = [("RateLimit-Limit", str(steady.limit)), ("RateLimit-Remaining", str(min(rem1 * 60, rem2))),
                   ("RateLimit-Reset", str(int(max(reset1 if not ok1 else 0, reset2)) + 0))]
        if not (ok1 and ok2):
            wait = max(1, int(reset1 if not ok1 else reset2) + 1)
            self.rate_limited(key, wait)
            r = self.errors(429, "throttled", "Request was throttled.",
                            f"Request was throttled. Expected available in {wait} second{'s' if wait > 1 else ''}.")
            r.headers += headers + [("Retry-After", str(wait))]
            raise r
        return account, headers

    def listing(self, req, kind=None):
        kind = req.params["kind"]
        account, headers = self.auth(req, kind)
        default, most = PAGE_SIZE[kind]
        size = int(req.q("page[size]", str(default)))
        if not 1 <= size <= most:
            return self.errors(400, "invalid", "Invalid input.", f"page[size] must be between 1 and {most}",
                               "/page/size")
        rows = self.rows(kind, account, req.q("filter"), req.q("sort"))
        start = 0
        if req.q("page[cursor]"):
            c = cursor_decode(req.q("page[cursor]"))
            if not c:
                return self.errors(400, "invalid", "Invalid input.", "Invalid page cursor", "/page/cursor")
            start = c["o"]
        chunk = rows[start:start + size]
        base = f"{req.base_url}{req.path}"
        keep = {k: v[0] for k, v in req.query.items() if k != "page[cursor]"}
        links = {"self": base + ("?" + urllib.parse.urlencode(req.query, doseq=True) if req.query else ""),
                 "next": None, "prev": None}
        if start + size < len(rows):
            links["next"] = base + "?" + urllib.parse.urlencode({**keep, "page[cursor]": cursor_encode({"o": start + size})})
        if start > 0:
            links["prev"] = base + "?" + urllib.parse.urlencode({**keep, "page[cursor]": cursor_encode({"o": max(0, start - size)})})
        return Reply(200, {"data": [b() for b in chunk], "links": links}, headers,
                     ctype="application/vnd.api+json")

    def rows(self, kind, account, flt, sort):
        if kind == "accounts":
            return [lambda: {"type": "account", "id": account, "attributes": {
                "contact_information": {"organization_name": f"Stand-in {account}",
                                        "default_sender_email": f"news@{account.lower()}.example.com"},
                "preferred_currency": data.currency_of("klaviyo", account), "timezone": "UTC"}}]
        if kind == "metrics":
            return [lambda m=m: {"type": "metric", "id": metric_id(account, m), "attributes": {
                "name": m, "created": "2024-12-01T00:00:00+00:00", "updated": "2024-12-01T00:00:00+00:00",
                "integration": {"name": "Klaviyo" if "Email" in m else "API"}}} for m in data.ENGAGEMENT]
        filt = parse_filter(flt)
        if kind == "profiles":
            out = []
            for c in data.visible_contacts("klaviyo", account):
                v = data.contact_view(c)
                attrs = {"email": c["email"], "phone_number": c["phone"], "first_name": c["first_name"],
                         "last_name": c["last_name"], "created": iso(c["created_ts"]).replace("Z", "+00:00"),
                         "updated": iso(v["updated_ts"]).replace("Z", "+00:00"),
                         "last_event_date": iso(v["last_engagement_ts"]).replace("Z", "+00:00")
                         if v["last_engagement_ts"] else None,
                         "properties": {"lifecycle_stage": v["stage"], "source": c["source"]}}
                if all(test(attrs, f) for f in filt):
                    out.append((attrs, c))
            if sort:
                desc = sort.startswith("-")
                out.sort(key=lambda x: x[0].get(sort.lstrip("-")) or "", reverse=desc)
            return [lambda a=a, c=c: {"type": "profile", "id": c["profile_id"], "attributes": a}
                    for a, c in out]
        events = []
        now = CLOCK.now()
        for c in data.visible_contacts("klaviyo", account):
            for e in c["events"]:
                if e["ts"] <= now:
                    events.append((e, c))
        events.sort(key=lambda x: (x[0]["ts"], x[0]["id"]), reverse=(sort or "").startswith("-"))
        out = []
        for e, c in events:
            attrs = {"timestamp": int(e["ts"]), "datetime": iso(e["ts"]).replace("Z", "+00:00"),
                     "uuid": e["id"], "event_properties": {"$event_id": e["id"]}}
            if all(test(attrs, f) for f in filt):
                out.append((attrs, e, c))
        return [lambda a=a, e=e, c=c: {"type": "event", "id": e["id"], "attributes": a, "relationships": {
            "profile": {"data": {"type": "profile", "id": c["profile_id"]}},
            "metric": {"data": {"type": "metric", "id": metric_id(account, e["metric"])}}}}
            for a, e, c in out]

    def truth(self, req):
        from .admin import day_range
        account = req.q("account")
        if not account:
            raise Reply(400, {"error": "account is required"})
        since, until = day_range(req)
        return Reply(200, data.truth_crm("klaviyo", account, since, until))

    def accounts_view(self, user):
        return [{"account": data.accounts_of("klaviyo", user)[0],
                 "note": "a private key pk_X... reaches the account of user 'key-' + X[:8] "
                         "unless registered with another through /_admin/keys"}]

    def webhook(self, spec):
        account = spec.get("account") or data.accounts_of("klaviyo", "demo")[0]
        ts = iso(CLOCK.now() + float(spec.get("timestamp_offset_s", 0))).replace("Z", "+00:00")
        hook_id = spec.get("webhook_id", "01HSTANDINWEBHOOK0000000000")
        if spec.get("body") is not None:
            payload = spec["body"]
        else:
            c = data.visible_contacts("klaviyo", account)[int(spec.get("index", -1))]
            e = c["events"][0] if c["events"] else {"id": c["id"], "ts": c["created_ts"], "metric": "Received Email"}
            payload = {"data": [{"topic": spec.get("topic", "event:klaviyo.opened_email"),
                                 "external_id": spec.get("event_id") or e["id"],
                                 "payload": {"type": "event", "id": e["id"], "attributes": {
                                     "timestamp": int(e["ts"]), "datetime": iso(e["ts"]),
                                     "event_properties": {}}}}],
                       "meta": {"klaviyo_account_id": account, "klaviyo_webhook_id": hook_id, "timestamp": ts}}
        body = json.dumps(payload).encode()
        secret = spec.get("secret") or self.config["webhook_secret"]
        sig = hmac.new(secret.encode(), body + ts.encode(), hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "Klaviyo-Signature": sig,
                      "Klaviyo-Timestamp": ts, "Klaviyo-Webhook-Id": hook_id}


def metric_id(account, name):
    return data.alnum(6, "metric", account, name).upper()


def parse_filter(text):
    """greater-than(updated,2025-01-01T00:00:00Z), and(...) of such."""
    out = []
    for m in re.finditer(r"(greater-than|greater-or-equal|less-than|less-or-equal|equals)\((\w+),([^)]+)\)", text or ""):
        out.append((m.group(1), m.group(2), m.group(3).strip("'\"")))
    return out


def test(attrs, f):
    op, field, value = f
    have = attrs.get(field)
    if have is None:
        return False
    if field in ("updated", "created", "datetime", "last_event_date"):
        a, b = parse_time(str(have)), parse_time(value)
    elif field == "timestamp":
        a, b = float(have), float(value)
    else:
        a, b = str(have), value
    return {"greater-than": a > b, "greater-or-equal": a >= b, "less-than": a < b,
            "less-or-equal": a <= b, "equals": a == b}[op]
