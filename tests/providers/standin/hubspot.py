"""HubSpot: OAuth with 30-minute access tokens and a refresh token that does
not change, token metadata and refresh-token deletion, CRM v3 objects
(contacts, deals) with paging.next.after, CRM search (POST, at most 10,000
results, 5 requests/s), the 110 requests / 10 s limit of public apps with
X-HubSpot-RateLimit-* headers, and X-HubSpot-Signature-v3 webhooks."""

import base64
import hashlib
import hmac
import json
import urllib.parse
import uuid

from . import data
from .core import CLOCK, COUNTERS, RETRY_AFTER, TOKENS, Provider, Reply, Sliding, iso_ms, parse_time, redirect

DEFAULT_PROPS = {"contacts": ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
                 "deals": ["amount", "closedate", "createdate", "dealname", "dealstage",
                           "hs_lastmodifieddate", "hs_object_id", "pipeline"]}


def crm_account(user):
    return data.accounts_of("hubspot", user)[0]


class HubSpot(Provider):
    name = "hubspot"
    defaults = {"access_ttl": 1800, "refresh_ttl": None, "rotate_refresh": False,
                "burst_max": 110, "burst_window_ms": 10000, "search_per_s": 5, "app_id": 4242}
    routes = [
        ("GET", r"/oauth/authorize", "authorize"),
        ("POST", r"/oauth/v1/token", "token"),
        ("GET", r"/oauth/v1/access-tokens/(?P<token>[^/]+)", "access_token_info"),
        ("GET", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)", "refresh_token_info"),
        ("DELETE", r"/oauth/v1/refresh-tokens/(?P<token>[^/]+)", "delete_refresh_token"),
        ("GET", r"/crm/v3/objects/(?P<type>contacts|deals)", "list_objects"),
        ("GET", r"/crm/v3/objects/(?P<type>contacts|deals)/(?P<id>\d+)", "get_object"),
        ("POST", r"/crm/v3/objects/(?P<type>contacts|deals)/search", "search"),
    ]

    def setup(self):
        self.burst = Sliding(self.config["burst_max"], self.config["burst_window_ms"] / 1000.0)
        self.search_rate = Sliding(self.config["search_per_s"], 1.0)

    def error(self, status, message, category, **extra):
        body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                "category": category}
        body.update(extra)
        return Reply(status, body)

    def server_error(self, req, status):
        return self.error(status, "internal error", "INTERNAL_ERROR")

    def not_found(self, req):
        return Reply(404, b"", ctype=None)

    # --- OAuth ---
    def authorize(self, req):
        redirect_uri = req.q("redirect_uri")
        if req.q("client_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "Authorization failed because the client_id is invalid", ctype="text/html")
        if self.deny_requested(req):
            return redirect(redirect_uri, {"error": "access_denied", "state": req.q("state", "")})
        grant = self.grant_for(req, req.q("client_id"), req.q("scope", ""))
        grant.extra["hub_id"] = int(crm_account(grant.user))
        code = TOKENS.new_code(grant, redirect_uri, ttl=self.config["code_ttl"])
        return redirect(redirect_uri, {"code": code, "state": req.q("state", "")})

    def token(self, req):
        f = req.form()
        if f.get("client_id") != self.config["client_id"]:
            return Reply(400, {"status": "BAD_CLIENT_ID", "message": "missing or invalid client id",
                               "correlationId": str(uuid.uuid4())})
        if f.get("client_secret") != self.config["client_secret"]:
            return Reply(400, {"status": "BAD_CLIENT_SECRET", "message": "missing or invalid client secret",
                               "correlationId": str(uuid.uuid4())})
        cfg = self.config
        if f.get("grant_type") == "refresh_token":
            a, r, why = TOKENS.refresh(self.name, f.get("refresh_token"), f["client_id"],
                                       cfg["access_ttl"], cfg["refresh_ttl"], cfg["rotate_refresh"], 0)
            if why:
                return Reply(400, {"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token",
                                   "correlationId": str(uuid.uuid4())})
        else:
            grant, why = TOKENS.redeem(self.name, f.get("code"), f["client_id"], f.get("redirect_uri"))
            if why:
                return Reply(400, {"status": "BAD_AUTH_CODE", "message": "missing or unknown auth code",
                                   "correlationId": str(uuid.uuid4())})
            a, r = TOKENS.issue(grant, cfg["access_ttl"], cfg["refresh_ttl"], True, "CN", "na1-")
        return Reply(200, {"token_type": "bearer", "refresh_token": r.value, "access_token": a.value,
                           "expires_in": a.expires_in()})

    def token_meta(self, t):
        return {"token": t.value, "user": f"{t.grant.user}@example.com",
                "hub_domain": f"{t.grant.user}.example.com", "scopes": t.grant.scope.split(),
                "hub_id": t.grant.extra.get("hub_id"), "app_id": self.config["app_id"],
                "user_id": int(data.digits(7, "hsuser", t.grant.user)), "token_type": "access"}

    def access_token_info(self, req):
        t, why = TOKENS.check(self.name, req.params["token"])
        if why:
            return self.error(404, "Token not found or expired", "EXPIRED_AUTHENTICATION"
                              if why == "expired" else "OBJECT_NOT_FOUND")
        out = self.token_meta(t)
        out["expires_in"] = t.expires_in()
        return Reply(200, out)

    def refresh_token_info(self, req):
        t, why = TOKENS.check(self.name, req.params["token"], "refresh")
        if why:
            return self.error(404, "refresh token not found", "OBJECT_NOT_FOUND")
        out = self.token_meta(t)
        out["token_type"] = "refresh"
        return Reply(200, out)

    def delete_refresh_token(self, req):
        if not TOKENS.revoke_token(self.name, req.params["token"]):
            return self.error(404, "refresh token not found", "OBJECT_NOT_FOUND")
        return Reply(204, b"", ctype=None)

    # --- CRM ---
    def auth(self, req, search=False):
        t, why = TOKENS.check(self.name, req.bearer())
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            if why == "expired":
                raise self.error(401, "The OAuth token used to make this call expired "
                                 f"{int((CLOCK.now() - t.expires) // 60)} minute(s) ago.", "EXPIRED_AUTHENTICATION")
            raise self.error(401, "Authentication credentials not found. This API supports OAuth 2.0 "
                             "authentication and you can find more details at "
                             "https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                             "INVALID_AUTHENTICATION")
        portal = str(t.grant.extra.get("hub_id"))
        key = f"{t.grant.client_id}:{portal}"
        RETRY_AFTER.check(self.name, key)
        ok, remaining, reset = self.burst.hit(key)
        headers = [("X-HubSpot-RateLimit-Interval-Milliseconds", str(self.config["burst_window_ms"])),
                   ("X-HubSpot-RateLimit-Max", str(self.config["burst_max"])),
                   ("X-HubSpot-RateLimit-Remaining", str(remaining))]
        if not ok:
            self.rate_limited(key, reset)
            r = self.error(429, "You have reached your ten_secondly_rolling limit.", "RATE_LIMITS",
                           errorType="RATE_LIMIT", policyName="TEN_SECONDLY_ROLLING",
                           groupName=f"publicapi:oauth:{self.config['app_id']}:{portal}")
            r.headers.extend(headers)
            raise r
        if search:
            ok, _r, reset = self.search_rate.hit(key)
            if not ok:
                self.rate_limited(key, reset)
                raise self.error(429, "You have reached your secondly limit.", "RATE_LIMITS",
                                 errorType="RATE_LIMIT", policyName="SECONDLY")
            headers = []    # the search endpoints send no rate limit headers
        return portal, headers

    def records(self, portal, kind):
        out = []
        for c in data.visible_contacts("hubspot", portal):
            v = data.contact_view(c)
            if kind == "contacts":
                out.append((c, v))
            elif v["deal"]:
                out.append((c, v))
        return out

    def properties(self, kind, c, v):
        if kind == "contacts":
            return {"hs_object_id": c["id"], "email": c["email"], "firstname": c["first_name"],
                    "lastname": c["last_name"], "phone": c["phone"], "lifecyclestage": v["stage"],
                    "createdate": iso_ms(c["created_ts"]), "lastmodifieddate": iso_ms(v["updated_ts"]),
                    "hs_analytics_source": c["source"],
                    "hs_email_open": str(v["engagement"]["Opened Email"]),
                    "hs_email_click": str(v["engagement"]["Clicked Email"]),
                    "hs_email_delivered": str(v["engagement"]["Received Email"]),
                    "hs_last_sales_activity_timestamp": iso_ms(v["last_engagement_ts"])
                    if v["last_engagement_ts"] else None}
        d, dv = c["deal"], v["deal"]
        closed = dv["stage"] in ("closedwon", "closedlost")
        return {"hs_object_id": d["id"], "dealname": d["name"], "amount": "%d.%02d" % divmod(d["amount"], 100),
                "dealstage": dv["stage"], "pipeline": "default", "createdate": iso_ms(d["created_ts"]),
                "closedate": iso_ms(dv["stage_ts"]) if closed else None,
                "hs_lastmodifieddate": iso_ms(dv["stage_ts"]), "hs_is_closed_won": str(dv["stage"] == "closedwon").lower()}

    def obj(self, kind, c, v, props, assoc):
        all_props = self.properties(kind, c, v)
        pid = all_props["hs_object_id"]
        created = c["created_ts"] if kind == "contacts" else c["deal"]["created_ts"]
        updated = v["updated_ts"] if kind == "contacts" else v["deal"]["stage_ts"]
        out = {"id": pid, "properties": {p: all_props.get(p) for p in props},
               "createdAt": iso_ms(created), "updatedAt": iso_ms(updated), "archived": False}
        if assoc and kind == "deals":
            out["associations"] = {"contacts": {"results": [{"id": c["id"], "type": "deal_to_contact"}]}}
        elif assoc and kind == "contacts" and c["deal"] and v["deal"]:
            out["associations"] = {"deals": {"results": [{"id": c["deal"]["id"], "type": "contact_to_deal"}]}}
        return out

    def list_objects(self, req):
        portal, headers = self.auth(req)
        kind = req.params["type"]
        limit = int(req.q("limit", "10"))
        if not 1 <= limit <= 100:
            return self.error(400, "limit must be between 1 and 100", "VALIDATION_ERROR")
        props = req.q("properties", "").split(",") if req.q("properties") else DEFAULT_PROPS[kind]
        start = int(req.q("after", "0") or 0)
        rows = self.records(portal, kind)
        chunk = rows[start:start + limit]
        out = {"results": [self.obj(kind, c, v, props, req.q("associations")) for c, v in chunk]}
        if start + limit < len(rows):
            nxt = str(start + limit)
            q = {k: v[0] for k, v in req.query.items() if k != "after"}
            q["after"] = nxt
            out["paging"] = {"next": {"after": nxt, "link": f"{req.base_url}{req.path}?{urllib.parse.urlencode(q)}"}}
        return Reply(200, out, headers)

    def get_object(self, req):
        portal, headers = self.auth(req)
        kind = req.params["type"]
        for c, v in self.records(portal, kind):
            pid = c["id"] if kind == "contacts" else c["deal"]["id"]
            if pid == req.params["id"]:
                props = req.q("properties", "").split(",") if req.q("properties") else DEFAULT_PROPS[kind]
                return Reply(200, self.obj(kind, c, v, props, req.q("associations")), headers)
        return self.error(404, "Object not found", "OBJECT_NOT_FOUND")

    def search(self, req):
        portal, headers = self.auth(req, search=True)
        kind = req.params["type"]
        body = req.json()
        if not isinstance(body, dict):
            return self.error(400, "Invalid input JSON", "VALIDATION_ERROR")
        limit = int(body.get("limit", 10))
        if not 1 <= limit <= 200:
            return self.error(400, "limit must be between 1 and 200", "VALIDATION_ERROR")
        start = int(body.get("after") or 0)
        if start + limit > 10000:
            return self.error(400, "The search endpoints page through at most 10,000 results",
                              "VALIDATION_ERROR")
        rows = [(c, v, self.properties(kind, c, v)) for c, v in self.records(portal, kind)]
        groups = body.get("filterGroups") or []
        if groups:
            rows = [r for r in rows if any(all(test(r[2], f) for f in g.get("filters", [])) for g in groups)]
        for s in reversed(body.get("sorts") or []):
            name = s.get("propertyName") if isinstance(s, dict) else str(s)
            desc = isinstance(s, dict) and s.get("direction") == "DESCENDING"
            rows.sort(key=lambda r: sort_key(r[2].get(name)), reverse=desc)
        props = body.get("properties") or DEFAULT_PROPS[kind]
        chunk = rows[start:start + limit]
        out = {"total": len(rows), "results": [self.obj(kind, c, v, props, False) for c, v, _ in chunk]}
        if start + limit < len(rows):
            out["paging"] = {"next": {"after": str(start + limit)}}
        return Reply(200, out, headers)

    def truth(self, req):
        from .admin import day_range
        account = req.q("account")
        if not account:
            raise Reply(400, {"error": "account (hub id) is required"})
        since, until = day_range(req)
        return Reply(200, data.truth_crm("hubspot", account, since, until))

    def accounts_view(self, user):
        return [{"hub_id": crm_account(user)}]

    # --- webhooks (signature v3) ---
    def webhook(self, spec):
        portal = spec.get("account") or crm_account("demo")
        contacts = data.visible_contacts("hubspot", portal)
        c = contacts[int(spec.get("index", -1))]
        now_ms = int((CLOCK.now() + float(spec.get("timestamp_offset_s", 0))) * 1000)
        payload = spec["body"] if spec.get("body") is not None else [{
            "eventId": int(spec.get("event_id") or data.digits(9, "hsevent", portal, c["id"], now_ms)),
            "subscriptionId": 1001, "portalId": int(portal), "appId": self.config["app_id"],
            "occurredAt": now_ms, "subscriptionType": spec.get("topic", "contact.propertyChange"),
            "attemptNumber": 0, "objectId": int(c["id"]), "propertyName": "lifecyclestage",
            "propertyValue": data.contact_view(c)["stage"], "changeSource": "CRM"}]
        body = json.dumps(payload).encode()
        secret = spec.get("secret") or self.config["client_secret"]
        msg = b"POST" + spec["url"].encode() + body + str(now_ms).encode()
        sig = base64.b64encode(hmac.new(secret.encode(), msg, hashlib.sha256).digest()).decode()
        return body, {"Content-Type": "application/json", "X-HubSpot-Signature-v3": sig,
                      "X-HubSpot-Request-Timestamp": str(now_ms)}


def sort_key(v):
    return (v is None, v if not isinstance(v, str) or not v[:1].isdigit() else v.zfill(30))


def test(props, f):
    name, op, value = f.get("propertyName"), f.get("operator", "EQ"), f.get("value")
    have = props.get(name)
    if op == "HAS_PROPERTY":
        return have is not None
    if op == "NOT_HAS_PROPERTY":
        return have is None
    if have is None:
        return False
    a, b = have, value
    if name.endswith("date") or name in ("createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate"):
        a = parse_time(have)
        b = int(value) / 1000.0 if str(value).isdigit() else parse_time(str(value))
    elif name in ("amount",):
        a, b = float(have), float(value)
    return {"EQ": a == b, "NEQ": a != b, "GT": a > b, "GTE": a >= b, "LT": a < b, "LTE": a <= b,
            "IN": have in (f.get("values") or [])}.get(op, False)
