"""LinkedIn Marketing API: OAuth 2.0 (60-day access tokens, 365-day refresh
tokens that are not rotated), revoke and introspect, the Linkedin-Version
header (400 when missing, 426 when sunset), ad accounts and campaigns with
pageToken paging, and adAnalytics without paging (one answer, at most 15,000
elements). Limits are per day per application and per member, with no
headers: 429 when exceeded."""

import datetime as dt
import re
import urllib.parse

from . import data
from .ads import AdData
from .core import CLOCK, COUNTERS, RETRY_AFTER, TOKENS, Daily, Provider, Reply, cursor_decode, cursor_encode, redirect

ACCOUNT_URN = "urn:li:sponsoredAccount:"
CAMPAIGN_URN = "urn:li:sponsoredCampaign:"
FIELDS = {"impressions": "impressions", "clicks": "clicks", "costInLocalCurrency": "spend",
          "externalWebsiteConversions": "conversions",
          "conversionValueInLocalCurrency": "conversion_value", "videoViews": "video_views"}


def restli_date(text):
    m = re.fullmatch(r"\(year:(\d+),month:(\d+),day:(\d+)\)", text or "")
    return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def date_obj(d):
    return {"year": d.year, "month": d.month, "day": d.day}


class LinkedIn(AdData, Provider):
    name = "linkedin"
    defaults = {"access_ttl": 60 * 86400, "refresh_ttl": 365 * 86400, "rotate_refresh": False,
                "daily_member_calls": 20000, "daily_app_calls": 100000, "max_elements": 15000,
                "active_versions_months": 12}
    routes = [
        ("GET", r"/oauth/v2/authorization", "authorize"),
        ("POST", r"/oauth/v2/accessToken", "access_token"),
        ("POST", r"/oauth/v2/revoke", "revoke"),
        ("POST", r"/oauth/v2/introspectToken", "introspect"),
        ("GET", r"/rest/adAccounts", "ad_accounts"),
        ("GET", r"/rest/adAccounts/(?P<account>\d+)/adCampaigns", "campaigns"),
        ("GET", r"/rest/adAnalytics", "analytics"),
    ]

    def setup(self):
        self.member_day = Daily(self.config["daily_member_calls"])
        self.app_day = Daily(self.config["daily_app_calls"])

    def error(self, status, code, message, service_code=None):
        body = {"status": status, "code": code, "message": message}
        if service_code:
            body["serviceErrorCode"] = service_code
        return Reply(status, body)

    def server_error(self, req, status):
        return self.error(status, "INTERNAL_SERVER_ERROR", "Internal Server Error")

    def not_found(self, req):
        return self.error(404, "NOT_FOUND", "No virtual resource found", 0)

    # --- OAuth ---
    def authorize(self, req):
        redirect_uri = req.q("redirect_uri")
        if req.q("client_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "invalid client_id", ctype="text/html")
        if self.deny_requested(req):
            return redirect(redirect_uri, {"error": "user_cancelled_authorize",
                                           "error_description": "The user cancelled the authorization",
                                           "state": req.q("state", "")})
        grant = self.grant_for(req, req.q("client_id"), req.q("scope", ""))
        code = TOKENS.new_code(grant, redirect_uri, ttl=self.config["code_ttl"])
        return redirect(redirect_uri, {"code": code, "state": req.q("state", "")})

    def oauth_error(self, error, description, status=400):
        return Reply(status, {"error": error, "error_description": description})

    def client_ok(self, f):
        return f.get("client_id") == self.config["client_id"] and \
            f.get("client_secret") == self.config["client_secret"]

    def access_token(self, req):
        f = req.form()
        if not self.client_ok(f):
            return self.oauth_error("invalid_client", "Client authentication failed", 401)
        cfg = self.config
        if f.get("grant_type") == "refresh_token":
            a, r, why = TOKENS.refresh(self.name, f.get("refresh_token"), f["client_id"],
                                       cfg["access_ttl"], cfg["refresh_ttl"], cfg["rotate_refresh"], 0)
            if why:
                return self.oauth_error("invalid_request", "The provided authorization grant or "
                                        "refresh token is invalid, expired or revoked.")
        elif f.get("grant_type") == "authorization_code":
            grant, why = TOKENS.redeem(self.name, f.get("code"), f["client_id"], f.get("redirect_uri"))
            if why:
                return self.oauth_error("invalid_request", "Unable to retrieve access token: "
                                        "appid/redirect uri/code verifier does not match authorization "
                                        "code. Or authorization code expired.")
            a, r = TOKENS.issue(grant, cfg["access_ttl"], cfg["refresh_ttl"], True, "AQ", "AQ")
        else:
            return self.oauth_error("unsupported_grant_type", "grant_type is not supported")
        return Reply(200, {"access_token": a.value, "expires_in": a.expires_in(),
                           "refresh_token": r.value, "refresh_token_expires_in": r.expires_in(),
                           "scope": a.grant.scope})

    def revoke(self, req):
        f = req.form()
        if not self.client_ok(f):
            return self.oauth_error("invalid_client", "Client authentication failed", 401)
        TOKENS.revoke_token(self.name, f.get("token"))
        return Reply(200, b"")

    def introspect(self, req):
        f = req.form()
        if not self.client_ok(f):
            return self.oauth_error("invalid_client", "Client authentication failed", 401)
        t, why = TOKENS.check(self.name, f.get("token"))
        if t is None and why:
            t, why2 = TOKENS.check(self.name, f.get("token"), "refresh")
            why = why2 if t else why
        if t is None:
            return Reply(200, {"active": False})
        return Reply(200, {"active": why is None, "client_id": t.grant.client_id,
                           "authorized_at": int(t.issued), "created_at": int(t.issued),
                           "status": {"expired": "expired", "revoked": "revoked"}.get(why, "active"),
                           "expires_at": int(t.expires) if t.expires else None,
                           "scope": t.grant.scope, "auth_type": "3L"})

    # --- REST API ---
    def auth(self, req):
        version = req.header("Linkedin-Version")
        if not version:
            raise self.error(400, "VERSION_MISSING", "A version must be present. Please specify a "
                             "version by adding the LinkedIn-Version header.")
        if not re.fullmatch(r"\d{6}(\.\d{2})?", version):
            raise self.error(400, "INVALID_VERSION", f"Version {version} is not valid")
        today = CLOCK.today()
        months = (today.year * 12 + today.month) - (int(version[:4]) * 12 + int(version[4:6]))
        if months >= self.config["active_versions_months"] or months < 0:
            raise self.error(426, "NONEXISTENT_VERSION", f"Requested version {version} is not active")
        t, why = TOKENS.check(self.name, req.bearer())
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            code, svc = {"expired": ("EXPIRED_ACCESS_TOKEN", 65601),
                         "revoked": ("REVOKED_ACCESS_TOKEN", 65602)}.get(why, ("INVALID_ACCESS_TOKEN", 65600))
            raise self.error(401, code, "The token used in the request has been revoked by the user"
                             if why == "revoked" else "The token used in the request has expired"
                             if why == "expired" else "Invalid access token", svc)
        endpoint = req.endpoint
        RETRY_AFTER.check(self.name, t.grant.user)
        ok_member, _ = self.member_day.hit((t.grant.user, endpoint))
        ok_app, _ = self.app_day.hit(endpoint)
        if not (ok_member and ok_app):
            self.rate_limited(t.grant.user, self.member_day.seconds_to_midnight())
            scope = "MEMBER" if not ok_member else "APPLICATION"
            raise self.error(429, "TOO_MANY_REQUESTS", f"Resource level throttle {scope} DAY limit "
                             "for calls to this resource is reached.", 101)
        return t

    def page(self, req, rows):
        size = int(req.q("pageSize", "100"))
        start = 0
        if req.q("pageToken"):
            c = cursor_decode(req.q("pageToken"))
            if not c:
                raise self.error(400, "ILLEGAL_ARGUMENT", "Invalid pageToken")
            start = c["o"]
        chunk = rows[start:start + size]
        meta = {}
        if start + size < len(rows):
            meta["nextPageToken"] = cursor_encode({"o": start + size})
        return {"elements": [b() for b in chunk], "metadata": meta}

    def ad_accounts(self, req):
        t = self.auth(req)
        if req.q("q") != "search":
            return self.error(400, "ILLEGAL_ARGUMENT", "q=search is required")
        rows = [lambda a=a: {"id": int(a), "name": f"Stand-in LinkedIn {a}", "currency":
                             data.currency_of("linkedin", a), "status": "ACTIVE", "type": "BUSINESS",
                             "reference": f"urn:li:organization:{data.digits(8, 'org', a)}"}
                for a in data.accounts_of("linkedin", t.grant.user)]
        return Reply(200, self.page(req, rows))

    def campaigns(self, req):
        t = self.auth(req)
        account = req.params["account"]
        if account not in data.accounts_of("linkedin", t.grant.user):
            return self.error(403, "ACCESS_DENIED", "Not enough permissions to access: adCampaigns", 100)
        rows = [lambda c=c: {"id": int(c["id"]), "name": c["name"], "account": ACCOUNT_URN + account,
                             "objectiveType": c["channel"], "type": "SPONSORED_UPDATES",
                             "status": "ACTIVE" if data.status_of(c) == "ENABLED" else "PAUSED",
                             "runSchedule": {"start": int(data.day_start(c["start"]) * 1000)}}
                for c in data.campaigns("linkedin", account)]
        return Reply(200, self.page(req, rows))

    def analytics(self, req):
        t = self.auth(req)
        if req.q("q") != "analytics":
            return self.error(400, "ILLEGAL_ARGUMENT", "q=analytics is required (the stand-in serves it)")
        if req.q("pivot") not in ("CAMPAIGN", "ACCOUNT"):
            return self.error(400, "ILLEGAL_ARGUMENT", "pivot must be CAMPAIGN or ACCOUNT")
        gran = req.q("timeGranularity", "DAILY")
        if gran not in ("DAILY", "ALL"):
            return self.error(400, "ILLEGAL_ARGUMENT", "timeGranularity must be DAILY or ALL here")
        m = re.fullmatch(r"\(start:(\(.+?\))(?:,end:(\(.+?\)))?\)", urllib.parse.unquote(req.q("dateRange", "")))
        since = restli_date(m.group(1)) if m else None
        until = restli_date(m.group(2)) if m and m.group(2) else CLOCK.today()
        if not since:
            return self.error(400, "ILLEGAL_ARGUMENT", "dateRange=(start:(year:Y,month:M,day:D),"
                                                       "end:(...)) is required")
        am = re.fullmatch(r"List\((.*)\)", urllib.parse.unquote(req.q("accounts", "")))
        accounts = [a.replace(ACCOUNT_URN, "") for a in am.group(1).split(",")] if am and am.group(1) else []
        if not accounts:
            return self.error(400, "ILLEGAL_ARGUMENT", "accounts=List(urn:li:sponsoredAccount:N) is required")
        mine = data.accounts_of("linkedin", t.grant.user)
        if any(a not in mine for a in accounts):
            return self.error(403, "ACCESS_DENIED", "Not enough permissions to access: adAnalytics", 100)
        fields = [f for f in (req.q("fields") or "impressions,clicks,costInLocalCurrency,dateRange,pivotValues").split(",") if f]
        today = CLOCK.today()
        elements = []
        for a in accounts:
            if req.q("pivot") == "CAMPAIGN":
                if gran == "DAILY":
                    for d, c in data.ad_rows("linkedin", a, since, until):
                        elements.append((CAMPAIGN_URN + c["id"], d, d, data.metrics("linkedin", a, c, d, today=today)))
                else:
                    per = data.truth_ads("linkedin", a, since, until, by="campaign")["values"]
                    elements.extend((CAMPAIGN_URN + cid, since, until, m) for cid, m in per.items())
            else:
                per = data.truth_ads("linkedin", a, since, until, by="day" if gran == "DAILY" else "total")["values"]
                for k, m in sorted(per.items()):
                    d0 = dt.date.fromisoformat(k) if gran == "DAILY" else since
                    elements.append((ACCOUNT_URN + a, d0, d0 if gran == "DAILY" else until, m))
        if len(elements) > self.config["max_elements"]:
            return self.error(400, "ILLEGAL_ARGUMENT", f"Request would return {len(elements)} elements, "
                              f"more than the maximum of {self.config['max_elements']}; narrow the date "
                              "range or the accounts")
        out = []
        for urn, d0, d1, m in elements:
            e = {}
            for f in fields:
                if f == "pivotValues":
                    e[f] = [urn]
                elif f == "dateRange":
                    e[f] = {"start": date_obj(d0), "end": date_obj(d1)}
                elif f in FIELDS:
                    v = m[FIELDS[f]]
                    e[f] = "%d.%02d" % divmod(v, 100) if f in ("costInLocalCurrency",
                                                              "conversionValueInLocalCurrency") else v
            out.append(e)
        return Reply(200, {"paging": {"start": 0, "count": 10, "links": []}, "elements": out})
