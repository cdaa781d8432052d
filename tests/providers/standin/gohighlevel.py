"""GoHighLevel (LeadConnector API v2): OAuth through the location chooser,
Location or Company tokens, rotating single-use refresh tokens, location
tokens from an agency token, the Version header, contacts and opportunities
with their meta paging (startAfterId / page), 100 requests per 10 s and
200,000 per day per app and location with X-RateLimit-* headers, and
Ed25519-signed webhooks (X-GHL-Signature)."""

import base64
import json

from . import data
from .core import (CLOCK, COUNTERS, RETRY_AFTER, TOKENS, Daily, Grant, Provider, Reply, Sliding,
                   iso_ms, redirect)

VERSION = "2021-07-28"
STATUS = {"closedwon": "won", "closedlost": "lost"}


def signing_key():
    """The stand-in's Ed25519 key (fixed, so tests can pin the public key).
    Needs the `cryptography` package (python3-cryptography)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def public_key_pem():
    from cryptography.hazmat.primitives import serialization
    return signing_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class GoHighLevel(Provider):
    name = "gohighlevel"
    defaults = {"access_ttl": 86399, "refresh_ttl": 365 * 86400, "rotate_refresh": True,
                "refresh_grace_s": 0, "burst_max": 100, "burst_window_s": 10, "daily_max": 200000}
    routes = [
        ("GET", r"/oauth/chooselocation", "authorize"),
        ("POST", r"/oauth/token", "token"),
        ("POST", r"/oauth/locationToken", "location_token"),
        ("GET", r"/locations/(?P<location>\w+)", "location"),
        ("GET", r"/contacts/?", "contacts"),
        ("GET", r"/opportunities/search", "opportunities"),
        ("GET", r"/opportunities/pipelines", "pipelines"),
        ("GET", r"/webhooks/public-key", "public_key"),
    ]

    def setup(self):
        self.burst = Sliding(self.config["burst_max"], self.config["burst_window_s"])
        self.daily = Daily(self.config["daily_max"])

    def error(self, status, message, err=None):
        body = {"statusCode": status, "message": message}
        if err:
            body["error"] = err
        return Reply(status, body)

    def server_error(self, req, status):
        return self.error(status, "Internal server error")

    def not_found(self, req):
        return self.error(404, f"Cannot {req.method} {req.path}", "Not Found")

    # --- OAuth ---
    def authorize(self, req):
        redirect_uri = req.q("redirect_uri")
        if req.q("client_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "Invalid client", ctype="text/html")
        if self.deny_requested(req):
            return redirect(redirect_uri, {"error": "access_denied", "state": req.q("state", "")})
        grant = self.grant_for(req, req.q("client_id"), req.q("scope", ""))
        locations = data.accounts_of("gohighlevel", grant.user)
        grant.extra.update(companyId=data.alnum(20, "company", grant.user),
                           locationId=req.q("stand_in_location") or locations[0])
        code = TOKENS.new_code(grant, redirect_uri, ttl=self.config["code_ttl"])
        params = {"code": code}
        if req.q("state"):
            params["state"] = req.q("state")
        return redirect(redirect_uri, params)

    def token_body(self, a, r):
        g = a.grant
        out = {"access_token": a.value, "token_type": "Bearer", "expires_in": a.expires_in(),
               "refresh_token": r.value if r else None, "scope": g.scope,
               "userType": g.extra.get("userType", "Location"), "companyId": g.extra["companyId"],
               "userId": data.alnum(20, "ghluser", g.user)}
        if out["userType"] == "Location":
            out["locationId"] = g.extra["locationId"]
        return out

    def token(self, req):
        f, cfg = req.form_or_json(), self.config
        if f.get("client_id") != cfg["client_id"] or f.get("client_secret") != cfg["client_secret"]:
            return Reply(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if f.get("grant_type") == "refresh_token":
            a, r, why = TOKENS.refresh(self.name, f.get("refresh_token"), cfg["client_id"], cfg["access_ttl"],
                                       cfg["refresh_ttl"], cfg["rotate_refresh"], cfg["refresh_grace_s"])
            if why:
                return Reply(400, {"error": "invalid_grant", "error_description": "Invalid grant: refresh "
                                   "token is invalid" if why != "reused" else "Invalid grant: refresh token "
                                   "has already been used"})
            return Reply(200, self.token_body(a, r))
        if f.get("grant_type") != "authorization_code":
            return Reply(400, {"error": "unsupported_grant_type"})
        grant, why = TOKENS.redeem(self.name, f.get("code"), cfg["client_id"], f.get("redirect_uri"))
        if why:
            return Reply(400, {"error": "invalid_grant", "error_description": "Invalid grant: authorization "
                                                                              "code is invalid"})
        grant.extra["userType"] = f.get("user_type") or "Location"
        a, r = TOKENS.issue(grant, cfg["access_ttl"], cfg["refresh_ttl"])
        return Reply(200, self.token_body(a, r))

    def location_token(self, req):
        t = self.auth(req, None, limit=False)
        f = req.form_or_json()
        if t.grant.extra.get("userType") != "Company":
            return self.error(401, "This route is not yet supported by the IAM Service.")
        if f.get("companyId") != t.grant.extra["companyId"] or \
                f.get("locationId") not in data.accounts_of("gohighlevel", t.grant.user):
            return self.error(400, "Location not found for this company")
        g = Grant(self.name, t.grant.client_id, t.grant.user, t.grant.scope,
                  dict(t.grant.extra, userType="Location", locationId=f["locationId"]))
        a, _ = TOKENS.issue(g, self.config["access_ttl"], refresh=False)
        out = self.token_body(a, None)
        out.pop("refresh_token")
        return Reply(201, out)

    # --- API ---
    def auth(self, req, location, limit=True):
        if req.header("Version") != VERSION:
            raise self.error(400, f"Version header must be {VERSION}", "Bad Request")
        t, why = TOKENS.check(self.name, req.bearer())
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            raise self.error(401, "Invalid JWT")
        if location is not None and (t.grant.extra.get("userType") != "Location" or
                                     t.grant.extra.get("locationId") != location):
            raise self.error(403, "The token does not have access to this location.")
        if limit:
            key = f"{t.grant.client_id}:{t.grant.extra.get('locationId') or t.grant.extra['companyId']}"
            RETRY_AFTER.check(self.name, key)
            ok_day, day_left = self.daily.hit(key)
            ok, remaining, reset = self.burst.hit(key) if ok_day else (False, 0, self.daily.seconds_to_midnight())
            headers = [("X-RateLimit-Limit-Daily", str(self.config["daily_max"])),
                       ("X-RateLimit-Daily-Remaining", str(day_left)),
                       ("X-RateLimit-Interval-Milliseconds", str(self.config["burst_window_s"] * 1000)),
                       ("X-RateLimit-Max", str(self.config["burst_max"])),
                       ("X-RateLimit-Remaining", str(remaining))]
            if not ok:
                self.rate_limited(key, reset)
                r = self.error(429, "Too Many Requests")
                r.headers += headers
                raise r
            req.rate_headers = headers
        return t

    def location(self, req):
        self.auth(req, req.params["location"])
        loc = req.params["location"]
        return Reply(200, {"location": {"id": loc, "name": f"Stand-in location {loc[:6]}",
                                        "timezone": "UTC", "currency": data.currency_of("gohighlevel", loc)}},
                     req.rate_headers)

    def contacts(self, req):
        loc = req.q("locationId")
        self.auth(req, loc)
        limit = int(req.q("limit", "20"))
        if not 1 <= limit <= 100:
            return self.error(422, ["limit must not be greater than 100"], "Unprocessable Entity")
        rows = data.visible_contacts("gohighlevel", loc)
        after_id, after = req.q("startAfterId"), req.q("startAfter")
        start = 0
        if after_id:
            start = next((i + 1 for i, c in enumerate(rows) if c["alt_id"] == after_id), len(rows))
        elif after:
            start = next((i for i, c in enumerate(rows) if c["created_ts"] * 1000 > int(after)), len(rows))
        chunk = rows[start:start + limit]
        items = [self.contact(loc, c) for c in chunk]
        meta = {"total": len(rows), "currentPage": start // limit + 1,
                "nextPage": start // limit + 2 if start + limit < len(rows) else None,
                "prevPage": start // limit if start else None}
        if chunk and start + limit < len(rows):
            last = chunk[-1]
            meta.update(startAfterId=last["alt_id"], startAfter=int(last["created_ts"] * 1000),
                        nextPageUrl=f"{req.base_url}/contacts/?locationId={loc}&limit={limit}"
                                    f"&startAfterId={last['alt_id']}&startAfter={int(last['created_ts'] * 1000)}")
        else:
            meta.update(startAfterId=None, startAfter=None, nextPageUrl=None)
        return Reply(200, {"contacts": items, "meta": meta}, req.rate_headers)

    def contact(self, loc, c):
        v = data.contact_view(c)
        return {"id": c["alt_id"], "locationId": loc, "firstName": c["first_name"], "lastName": c["last_name"],
                "contactName": f"{c['first_name']} {c['last_name']}".lower(), "email": c["email"],
                "phone": c["phone"], "type": "customer" if v["stage"] == "customer" else "lead",
                "source": c["source"].replace("_", " ").lower(), "tags": [v["stage"]],
                "dateAdded": iso_ms(c["created_ts"]), "dateUpdated": iso_ms(v["updated_ts"]),
                "attributions": [{"utmSessionSource": c["source"], "isFirst": True}]}

    def opportunities(self, req):
        loc = req.q("location_id")
        self.auth(req, loc)
        limit = int(req.q("limit", "20"))
        page = int(req.q("page", "1"))
        if not 1 <= limit <= 100 or page < 1:
            return self.error(422, ["limit must not be greater than 100"], "Unprocessable Entity")
        rows = []
        for c in data.visible_contacts("gohighlevel", loc):
            v = data.contact_view(c)
            if v["deal"]:
                rows.append((c, v))
        chunk = rows[(page - 1) * limit: page * limit]
        cur = data.currency_of("gohighlevel", loc)
        items = [{"id": data.alnum(20, "opp", loc, c["deal"]["id"]), "name": c["deal"]["name"],
                  "monetaryValue": c["deal"]["amount"] / 100, "currency": cur,
                  "pipelineId": data.alnum(20, "pipeline", loc),
                  "pipelineStageId": data.alnum(20, "stage", loc, v["deal"]["stage"]),
                  "status": STATUS.get(v["deal"]["stage"], "open"), "source": c["source"],
                  "contactId": c["alt_id"], "locationId": loc,
                  "createdAt": iso_ms(c["deal"]["created_ts"]), "updatedAt": iso_ms(v["deal"]["stage_ts"]),
                  "lastStatusChangeAt": iso_ms(v["deal"]["stage_ts"])} for c, v in chunk]
        more = page * limit < len(rows)
        meta = {"total": len(rows), "currentPage": page, "nextPage": page + 1 if more else None,
                "prevPage": page - 1 if page > 1 else None,
                "nextPageUrl": f"{req.base_url}/opportunities/search?location_id={loc}&limit={limit}&page={page + 1}"
                if more else None, "startAfterId": None, "startAfter": None}
        return Reply(200, {"opportunities": items, "meta": meta, "aggregations": {}}, req.rate_headers)

    def pipelines(self, req):
        loc = req.q("locationId")
        self.auth(req, loc)
        stages = list(data.DEAL_STAGES) + ["closedwon", "closedlost"]
        return Reply(200, {"pipelines": [{"id": data.alnum(20, "pipeline", loc), "name": "Sales pipeline",
                                          "stages": [{"id": data.alnum(20, "stage", loc, s), "name": s,
                                                      "position": i} for i, s in enumerate(stages)]}]},
                     req.rate_headers)

    def public_key(self, req):
        return Reply(200, public_key_pem(), ctype="text/plain")

    def truth(self, req):
        from .admin import day_range
        account = req.q("account")
        if not account:
            raise Reply(400, {"error": "account (location id) is required"})
        since, until = day_range(req)
        return Reply(200, data.truth_crm("gohighlevel", account, since, until))

    def accounts_view(self, user):
        return [{"locationId": loc} for loc in data.accounts_of("gohighlevel", user)] + \
            [{"companyId": data.alnum(20, "company", user)}]

    def webhook(self, spec):
        loc = spec.get("account") or data.accounts_of("gohighlevel", "demo")[0]
        if spec.get("body") is not None:
            payload = spec["body"]
        else:
            c = data.visible_contacts("gohighlevel", loc)[int(spec.get("index", -1))]
            payload = dict(self.contact(loc, c), type=spec.get("topic", "ContactCreate"),
                           webhookId=spec.get("event_id") or data.alnum(24, "wh", loc, c["id"], CLOCK.now()),
                           timestamp=iso_ms(CLOCK.now() + float(spec.get("timestamp_offset_s", 0))))
        body = json.dumps(payload).encode()
        sig = base64.b64encode(signing_key().sign(body)).decode()
        return body, {"Content-Type": "application/json", "X-GHL-Signature": sig}
