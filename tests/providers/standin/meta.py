"""Meta (Facebook) Marketing API: Login dialog, code exchange for a
short-lived user token, fb_exchange_token for a ~60-day token (no refresh
token: re-exchange a valid long-lived token before it expires), debug_token,
ad accounts, campaigns, insights with cursor paging, Business Use Case rate
limiting (X-Business-Use-Case-Usage, error code 17), X-Hub-Signature-256
webhooks."""

import hashlib
import hmac
import json
import urllib.parse

from . import data
from .ads import AdData
from .core import (CLOCK, COUNTERS, RETRY_AFTER, TOKENS, Provider, Reply, Sliding,
                   cursor_decode, cursor_encode, iso, new_secret, parse_day, redirect, request_id)
import datetime as dt

V = r"/(?P<version>v\d+\.\d+)"
PRESETS = {"today": (0, 0), "yesterday": (1, 1), "last_3d": (3, 1), "last_7d": (7, 1),
           "last_14d": (14, 1), "last_28d": (28, 1), "last_30d": (30, 1), "last_90d": (90, 1)}
INSIGHT_FIELDS = {"account_id", "account_name", "account_currency", "campaign_id", "campaign_name",
                  "spend", "impressions", "clicks", "actions", "action_values", "video_play_actions",
                  "date_start", "date_stop", "objective", "cpc", "ctr"}


def dollars(minor):
    return "%d.%02d" % divmod(minor, 100)


class Meta(AdData, Provider):
    name = "meta"
    defaults = {"access_ttl": 2 * 3600, "long_lived_ttl": 60 * 86400,
                "insights_calls_per_hour": 600, "max_limit": 500}
    routes = [
        ("GET", V + r"/dialog/oauth", "dialog"),
        ("GET", V + r"/oauth/access_token", "access_token"),
        ("GET", r"(?:" + V + r")?/debug_token", "debug_token"),
        ("GET", V + r"/me", "me"),
        ("GET", V + r"/me/adaccounts", "adaccounts"),
        ("DELETE", V + r"/me/permissions", "deauthorize"),
        ("GET", V + r"/act_(?P<account>\d+)/campaigns", "campaigns"),
        ("GET", V + r"/act_(?P<account>\d+)/insights", "insights"),
    ]

    def setup(self):
        self.buc_window = Sliding(self.config["insights_calls_per_hour"], 3600)

    def error(self, status, message, code, subcode=None, transient=False, etype="OAuthException"):
        err = {"message": message, "type": etype, "code": code, "fbtrace_id": new_secret("A", 8)}
        if subcode:
            err["error_subcode"] = subcode
        if transient:
            err["is_transient"] = True
        return Reply(status, {"error": err}, [("x-fb-trace-id", err["fbtrace_id"]),
                                              ("x-fb-request-id", request_id())])

    def server_error(self, req, status):
        return self.error(status, "An unexpected error has occurred. Please retry your request later.",
                          2, transient=True)

    def not_found(self, req):
        return self.error(400, "Unsupported get request. Please read the Graph API documentation "
                          "at https://developers.facebook.com/docs/graph-api", 100, 33,
                          etype="GraphMethodException")

    # --- login and tokens ---
    def dialog(self, req):
        redirect_uri = req.q("redirect_uri")
        if req.q("client_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "Invalid App ID", ctype="text/html")
        if self.deny_requested(req):
            return redirect(redirect_uri, {"error": "access_denied", "error_code": "200",
                                           "error_reason": "user_denied",
                                           "error_description": "Permissions error",
                                           "state": req.q("state", "")})
        grant = self.grant_for(req, req.q("client_id"), req.q("scope", ""))
        code = TOKENS.new_code(grant, redirect_uri, ttl=self.config["code_ttl"])
        return redirect(redirect_uri, {"code": code, "state": req.q("state", "")})

    def access_token(self, req):
        if req.q("client_id") != self.config["client_id"] or \
                req.q("client_secret") != self.config["client_secret"]:
            return self.error(400, "Error validating client secret.", 1)
        if req.q("grant_type") == "fb_exchange_token":
            old, why = TOKENS.check(self.name, req.q("fb_exchange_token"))
            if why:
                return self.token_error(why)
            a, _ = TOKENS.issue(old.grant, self.config["long_lived_ttl"], refresh=False, prefix="EAA")
            COUNTERS.add("refreshes", self.name)
            return Reply(200, {"access_token": a.value, "token_type": "bearer",
                               "expires_in": a.expires_in()})
        grant, why = TOKENS.redeem(self.name, req.q("code"), req.q("client_id"), req.q("redirect_uri"))
        if why:
            return self.error(400, "This authorization code has been used." if why == "used" else
                              "Invalid verification code format.", 100, 36009 if why == "used" else None)
        a, _ = TOKENS.issue(grant, self.config["access_ttl"], refresh=False, prefix="EAA")
        return Reply(200, {"access_token": a.value, "token_type": "bearer",
                           "expires_in": a.expires_in()})

    def token_error(self, why):
        COUNTERS.add("auth_failures", self.name, why)
        if why == "expired":
            return self.error(400, "Error validating access token: Session has expired on "
                              f"{iso(CLOCK.now() - 60)}. The current time is {iso(CLOCK.now())}.", 190, 463)
        if why == "revoked":
            return self.error(400, "Error validating access token: The user has not authorized "
                              "application.", 190, 458)
        return self.error(400, "Invalid OAuth access token - Cannot parse access token", 190)

    def auth(self, req):
        token = req.q("access_token") or req.bearer()
        t, why = TOKENS.check(self.name, token)
        if why:
            raise self.token_error(why)
        return t

    def debug_token(self, req):
        app = req.q("access_token") or ""
        if app != f"{self.config['client_id']}|{self.config['client_secret']}":
            self.auth(req)
        t, why = TOKENS.check(self.name, req.q("input_token"))
        body = {"app_id": self.config["client_id"], "type": "USER", "application": "Omnify",
                "is_valid": why is None}
        if t is not None:
            body.update(expires_at=int(t.expires) if t.expires else 0, user_id=data.digits(15, "fbuser", t.grant.user),
                        scopes=[s for s in t.grant.scope.split(",") if s],
                        data_access_expires_at=int(t.issued + 90 * 86400))
        return Reply(200, {"data": body})

    def me(self, req):
        t = self.auth(req)
        return Reply(200, {"id": data.digits(15, "fbuser", t.grant.user), "name": t.grant.user.title()})

    def deauthorize(self, req):
        t = self.auth(req)
        TOKENS.revoke_grant(t.grant)
        return Reply(200, {"success": True})

    # --- listing ---
    def page(self, req, rows, limit_default=25):
        limit = int(req.q("limit", str(limit_default)))
        if not 1 <= limit <= self.config["max_limit"]:
            raise self.error(400, f"(#100) The parameter limit must be between 1 and {self.config['max_limit']}", 100)
        start = 0
        if req.q("after"):
            c = cursor_decode(req.q("after"))
            if not c:
                raise self.error(400, "(#100) The after cursor is not valid", 100)
            start = c["o"]
        chunk = rows[start:start + limit]
        out = {"data": [build() for build in chunk]}
        if chunk:
            paging = {"cursors": {"before": cursor_encode({"o": start}),
                                  "after": cursor_encode({"o": start + len(chunk)})}}
            if start + limit < len(rows):
                q = {k: v[0] for k, v in req.query.items() if k != "after"}
                q["after"] = paging["cursors"]["after"]
                paging["next"] = f"{req.base_url}{req.path}?{urllib.parse.urlencode(q)}"
            if start > 0:
                paging["previous"] = f"{req.base_url}{req.path}?before={paging['cursors']['before']}"
            out["paging"] = paging
        return out

    def adaccounts(self, req):
        t = self.auth(req)
        rows = [lambda a=a: {"id": f"act_{a}", "account_id": a, "name": f"Stand-in ads {a}",
                             "currency": data.currency_of("meta", a), "timezone_name": "Etc/UTC",
                             "account_status": 1} for a in data.accounts_of("meta", t.grant.user)]
        return Reply(200, self.page(req, rows), [("X-App-Usage", json.dumps(
            {"call_count": 1, "total_cputime": 1, "total_time": 1}))])

    def account_access(self, req):
        t = self.auth(req)
        account = req.params["account"]
        if account not in data.accounts_of("meta", t.grant.user):
            raise self.error(400, "(#200) Ad account owner has NOT grant ads_management or "
                             "ads_read permission", 200)
        return account

    def buc(self, req, account):
        RETRY_AFTER.check(self.name, account)
        ok, remaining, reset = self.buc_window.hit(account)
        limit = self.config["insights_calls_per_hour"]
        pct = min(100, int(round(100 * (limit - remaining) / limit)))
        regain = 0 if ok else max(1, int(reset // 60) + 1)
        usage = {data.digits(15, "business", account): [{
            "type": "ads_insights", "call_count": pct, "total_cputime": pct // 2,
            "total_time": pct // 2, "estimated_time_to_regain_access": regain,
            "ads_api_access_tier": "standard_access"}]}
        headers = [("X-Business-Use-Case-Usage", json.dumps(usage)),
                   ("X-Ad-Account-Usage", json.dumps({"acc_id_util_pct": pct,
                                                      "reset_time_duration": int(reset),
                                                      "ads_api_access_tier": "standard_access"}))]
        if not ok:
            self.rate_limited(account, reset)
            r = self.error(400, "(#17) User request limit reached", 17, 2446079, transient=True)
            r.headers.extend(headers)
            raise r
        return headers

    def campaigns(self, req):
        account = self.account_access(req)
        headers = self.buc(req, account)
        rows = [lambda c=c: {"id": c["id"], "name": c["name"], "objective": c["channel"],
                             "status": "ACTIVE" if data.status_of(c) == "ENABLED" else "PAUSED",
                             "start_time": c["start"].isoformat() + "T00:00:00+0000",
                             "account_id": account}
                for c in data.campaigns("meta", account)]
        return Reply(200, self.page(req, rows), headers)

    def insights(self, req):
        account = self.account_access(req)
        headers = self.buc(req, account)
        today = CLOCK.today()
        if req.q("time_range"):
            try:
                tr = json.loads(req.q("time_range"))
                since, until = parse_day(tr["since"]), parse_day(tr["until"])
            except (ValueError, KeyError, TypeError):
                raise self.error(400, "(#100) time_range must be {'since':'YYYY-MM-DD','until':'YYYY-MM-DD'}", 100) from None
        else:
            preset = req.q("date_preset", "last_30d")
            if preset == "maximum":
                since, until = data.DATA_START, today
            elif preset in PRESETS:
                back, end = PRESETS[preset]
                since, until = today - dt.timedelta(days=back), today - dt.timedelta(days=end)
            else:
                raise self.error(400, f"(#100) date_preset must be one of {sorted(PRESETS)}", 100)
        if until < since or (until - since).days > 37 * 31:
            raise self.error(400, "(#3018) The start date of the time range cannot be beyond 37 "
                                  "months from the current date", 3018)
        fields = [f for f in (req.q("fields") or "spend,impressions,date_start,date_stop").split(",") if f]
        bad = [f for f in fields if f not in INSIGHT_FIELDS]
        if bad:
            raise self.error(400, f"(#100) {bad[0]} is not valid for fields param.", 100)
        level = req.q("level", "account")
        daily = req.q("time_increment", "all_days") == "1"
        cur = data.currency_of("meta", account)
        rows = []
        if level == "campaign":
            if daily:
                pairs = data.ad_rows("meta", account, since, until)
                for d, c in pairs:
                    rows.append(lambda d=d, c=c: self.row(account, cur, c, d, d,
                                                          data.metrics("meta", account, c, d, today=today), fields))
            else:
                per = data.truth_ads("meta", account, since, until, by="campaign")["values"]
                for c in data.campaigns("meta", account):
                    if c["id"] in per:
                        rows.append(lambda c=c: self.row(account, cur, c, since, until, per[c["id"]], fields))
        elif level == "account":
            if daily:
                per = data.truth_ads("meta", account, since, until, by="day")["values"]
                for day, m in sorted(per.items()):
                    d = parse_day(day)
                    rows.append(lambda d=d, m=m: self.row(account, cur, None, d, d, m, fields))
            else:
                tot = data.truth_ads("meta", account, since, until)["values"].get("total")
                if tot:
                    rows.append(lambda: self.row(account, cur, None, since, until, tot, fields))
        else:
            raise self.error(400, "(#100) level must be one of account, campaign (the stand-in "
                                  "serves these two)", 100)
        return Reply(200, self.page(req, rows), headers)

    def row(self, account, cur, c, since, until, m, fields):
        conv, value = str(m["conversions"]), dollars(m["conversion_value"])
        full = {"account_id": account, "account_name": f"Stand-in ads {account}",
                "account_currency": cur, "spend": dollars(m["spend"]),
                "impressions": str(m["impressions"]), "clicks": str(m["clicks"]),
                "cpc": "%.6f" % (m["spend"] / 100 / m["clicks"]) if m["clicks"] else "0",
                "ctr": "%.6f" % (100.0 * m["clicks"] / m["impressions"]) if m["impressions"] else "0",
                "actions": [{"action_type": "offsite_conversion.fb_pixel_purchase", "value": conv},
                            {"action_type": "purchase", "value": conv}] if m["conversions"] else [],
                "action_values": [{"action_type": "offsite_conversion.fb_pixel_purchase", "value": value},
                                  {"action_type": "purchase", "value": value}] if m["conversions"] else [],
                "date_start": since.isoformat(), "date_stop": until.isoformat()}
        if m.get("video_views"):
            full["video_play_actions"] = [{"action_type": "video_view", "value": str(m["video_views"])}]
        if c is not None:
            full.update(campaign_id=c["id"], campaign_name=c["name"], objective=c["channel"])
        out = {f: full[f] for f in fields if f in full and (full[f] != [] or f in ("actions", "action_values"))}
        out["date_start"], out["date_stop"] = full["date_start"], full["date_stop"]
        return out

    # --- webhooks ---
    def webhook(self, spec):
        account = spec.get("account") or data.accounts_of("meta", "demo")[0]
        if spec.get("body") is not None:
            payload = spec["body"]
        else:
            camp = data.campaigns("meta", account)[int(spec.get("index", 0))]
            payload = {"object": "ad_account", "entry": [{
                "id": account, "time": int(CLOCK.now()),
                "changes": [{"field": spec.get("topic", "in_process_ad_objects"),
                             "value": {"id": camp["id"], "level": "CAMPAIGN",
                                       "status_name": "ACTIVE"}}]}]}
        body = json.dumps(payload).encode()
        secret = (spec.get("secret") or self.config["client_secret"]).encode()
        return body, {"Content-Type": "application/json",
                      "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
                      "X-Hub-Signature": "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()}
