"""TikTok API for Business (v1.3): the portal authorize page, the auth code
exchanged by a JSON POST for a long-lived access token (no refresh token by
default), the Access-Token header, errors as HTTP 200 with a code in the body
(40100 = too many requests), page/page_size paging, and integrated reports
(stat_time_day spans of at most 30 days)."""

import datetime as dt
import json

from . import data
from .ads import AdData
from .core import COUNTERS, RETRY_AFTER, TOKENS, CLOCK, Provider, Reply, Sliding, redirect, request_id

API = r"/open_api/v1\.3"
METRICS = {"spend": "spend", "impressions": "impressions", "clicks": "clicks",
           "conversion": "conversions", "total_complete_payment_rate": None,
           "complete_payment": "conversions", "total_purchase_value": "conversion_value",
           "video_play_actions": "video_views", "video_views_p100": "video_views"}


class TikTok(AdData, Provider):
    name = "tiktok"
    defaults = {"access_ttl": None, "issue_refresh_token": False, "refresh_ttl": 365 * 86400,
                "qps": 10, "max_day_span": 30}
    routes = [
        ("GET", r"/portal/auth", "authorize"),
        ("POST", API + r"/oauth2/access_token/?", "access_token"),
        ("POST", API + r"/oauth2/refresh_token/?", "refresh_token"),
        ("POST", API + r"/oauth2/revoke_token/?", "revoke"),
        ("GET", API + r"/oauth2/advertiser/get/?", "advertisers"),
        ("GET", API + r"/advertiser/info/?", "advertiser_info"),
        ("GET", API + r"/campaign/get/?", "campaigns"),
        ("GET", API + r"/report/integrated/get/?", "report"),
    ]

    def setup(self):
        self.limiter = Sliding(self.config["qps"], 1.0)

    def answer(self, code, message, payload=None):
        rid = request_id()
        return Reply(200, {"code": code, "message": message, "request_id": rid,
                           "data": payload if payload is not None else {}},
                     [("X-Tt-Logid", rid)])

    def server_error(self, req, status):
        if status >= 500 and req.path.startswith("/open_api"):
            return self.answer(50000, "System error. Please try again later.")
        return Reply(status, b"")

    def not_found(self, req):
        return Reply(404, {"code": 40404, "message": "Not found", "data": {}})

    # --- auth ---
    def authorize(self, req):
        redirect_uri = req.q("redirect_uri")
        if req.q("app_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "Invalid app_id", ctype="text/html")
        if self.deny_requested(req):
            return redirect(redirect_uri, {"state": req.q("state", ""), "error": "access_denied"})
        grant = self.grant_for(req, req.q("app_id"), "ads.read,reporting")
        code = TOKENS.new_code(grant, redirect_uri, ttl=self.config["code_ttl"])
        return redirect(redirect_uri, {"auth_code": code, "code": code, "state": req.q("state", "")})

    def app_ok(self, body):
        return isinstance(body, dict) and body.get("app_id") == self.config["client_id"] and \
            body.get("secret") == self.config["client_secret"]

    def token_payload(self, a, r):
        out = {"access_token": a.value, "scope": [1, 2, 3, 4],
               "advertiser_ids": data.accounts_of("tiktok", a.grant.user)}
        if a.expires is not None:
            out["access_token_expire_in"] = a.expires_in()
        if r is not None:
            out.update(refresh_token=r.value, refresh_token_expire_in=r.expires_in())
        return out

    def access_token(self, req):
        body = req.json()
        if (req.header("Content-Type") or "").split(";")[0] != "application/json" or not isinstance(body, dict):
            return self.answer(40002, "Content-Type must be application/json")
        if not self.app_ok(body):
            return self.answer(40001, "app_id or secret is invalid")
        grant, why = TOKENS.redeem(self.name, body.get("auth_code"), body["app_id"])
        if why:
            return self.answer(40002, "auth_code is invalid or has been used" if why != "expired"
                               else "auth_code has expired")
        cfg = self.config
        a, r = TOKENS.issue(grant, cfg["access_ttl"], cfg["refresh_ttl"], cfg["issue_refresh_token"])
        return self.answer(0, "OK", self.token_payload(a, r))

    def refresh_token(self, req):
        body = req.json()
        if not self.app_ok(body):
            return self.answer(40001, "app_id or secret is invalid")
        cfg = self.config
        a, r, why = TOKENS.refresh(self.name, body.get("refresh_token"), body["app_id"],
                                   cfg["access_ttl"], cfg["refresh_ttl"], False, 0)
        if why:
            return self.answer(40007, "refresh_token is invalid or has expired")
        return self.answer(0, "OK", self.token_payload(a, r))

    def revoke(self, req):
        body = req.json()
        if not self.app_ok(body):
            return self.answer(40001, "app_id or secret is invalid")
        if not TOKENS.revoke_token(self.name, body.get("access_token")):
            return self.answer(40105, "The access token is invalid or has been revoked.")
        return self.answer(0, "OK", {})

    def auth(self, req):
        t, why = TOKENS.check(self.name, req.header("Access-Token"))
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            if why == "expired":
                raise self.answer(40102, "The access token has expired.")
            if not req.header("Access-Token"):
                raise self.answer(40104, "Access token is empty.")
            raise self.answer(40105, "The access token is invalid or has been revoked.")
        RETRY_AFTER.check(self.name, t.value[:12])
        ok, _rem, reset = self.limiter.hit(t.value)
        if not ok:
            self.rate_limited(t.value[:12], reset)
            raise self.answer(40100, "Too many requests. Please retry in some time.")
        return t

    def advertiser(self, req, t, value=None):
        adv = value or req.q("advertiser_id")
        if adv not in data.accounts_of("tiktok", t.grant.user):
            raise self.answer(40001, f"No permission to operate advertiser {adv}.")
        return adv

    def advertisers(self, req):
        t = self.auth(req)
        if req.q("app_id") != self.config["client_id"] or req.q("secret") != self.config["client_secret"]:
            return self.answer(40001, "app_id or secret is invalid")
        return self.answer(0, "OK", {"list": [{"advertiser_id": a, "advertiser_name": f"Stand-in TikTok {a}"}
                                               for a in data.accounts_of("tiktok", t.grant.user)]})

    def json_param(self, req, name, default=None):
        raw = req.q(name)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            raise self.answer(40002, f"{name}: Not a valid JSON list.") from None

    def advertiser_info(self, req):
        t = self.auth(req)
        ids = self.json_param(req, "advertiser_ids", [])
        out = [{"advertiser_id": self.advertiser(req, t, a), "name": f"Stand-in TikTok {a}",
                "currency": data.currency_of("tiktok", a), "timezone": "Etc/GMT", "status": "STATUS_ENABLE"}
               for a in ids]
        return self.answer(0, "OK", {"list": out})

    def paging(self, req, rows, max_size):
        try:
            page, size = int(req.q("page", "1")), int(req.q("page_size", "10"))
        except ValueError:
            raise self.answer(40002, "page and page_size must be integers") from None
        if page < 1 or not 1 <= size <= max_size:
            raise self.answer(40002, f"page_size: Must be between 1 and {max_size}.")
        chunk = rows[(page - 1) * size: page * size]
        return [b() for b in chunk], {"page": page, "page_size": size, "total_number": len(rows),
                                      "total_page": (len(rows) + size - 1) // size}

    def campaigns(self, req):
        t = self.auth(req)
        adv = self.advertiser(req, t)
        rows = [lambda c=c: {"campaign_id": c["id"], "campaign_name": c["name"], "advertiser_id": adv,
                             "objective_type": c["channel"], "operation_status":
                             "ENABLE" if data.status_of(c) == "ENABLED" else "DISABLE",
                             "create_time": c["start"].isoformat() + " 00:00:00"}
                for c in data.campaigns("tiktok", adv)]
        items, info = self.paging(req, rows, 1000)
        return self.answer(0, "OK", {"list": items, "page_info": info})

    def report(self, req):
        t = self.auth(req)
        adv = self.advertiser(req, t)
        if req.q("report_type", "BASIC") != "BASIC":
            return self.answer(40002, "The stand-in serves report_type BASIC.")
        level = req.q("data_level", "AUCTION_CAMPAIGN")
        dims = self.json_param(req, "dimensions", [])
        metrics = self.json_param(req, "metrics", ["spend", "impressions"])
        bad = [m for m in metrics if m not in METRICS or METRICS[m] is None]
        if bad:
            return self.answer(40002, f"metrics: Invalid metric {bad[0]}.")
        try:
            since, until = dt.date.fromisoformat(req.q("start_date")), dt.date.fromisoformat(req.q("end_date"))
        except (TypeError, ValueError):
            return self.answer(40002, "start_date and end_date are required (YYYY-MM-DD).")
        if until < since:
            return self.answer(40002, "end_date must not be earlier than start_date.")
        if "stat_time_day" in dims and (until - since).days + 1 > self.config["max_day_span"]:
            return self.answer(40002, f"The time span cannot exceed {self.config['max_day_span']} "
                                      "days when stat_time_day is a dimension.")
        today = CLOCK.today()
        rows = []
        if level == "AUCTION_CAMPAIGN" and "campaign_id" in dims:
            if "stat_time_day" in dims:
                for d, c in data.ad_rows("tiktok", adv, since, until):
                    rows.append(lambda d=d, c=c: self.row(
                        {"campaign_id": c["id"], "stat_time_day": f"{d.isoformat()} 00:00:00"},
                        data.metrics("tiktok", adv, c, d, today=today), metrics))
            else:
                per = data.truth_ads("tiktok", adv, since, until, by="campaign")["values"]
                rows = [lambda c=c: self.row({"campaign_id": c["id"]}, per[c["id"]], metrics)
                        for c in data.campaigns("tiktok", adv) if c["id"] in per]
        elif level == "AUCTION_ADVERTISER":
            if "stat_time_day" in dims:
                per = data.truth_ads("tiktok", adv, since, until, by="day")["values"]
                rows = [lambda d=d, m=m: self.row({"advertiser_id": adv, "stat_time_day": f"{d} 00:00:00"}, m, metrics)
                        for d, m in sorted(per.items())]
            else:
                tot = data.truth_ads("tiktok", adv, since, until)["values"].get("total")
                rows = [lambda: self.row({"advertiser_id": adv}, tot, metrics)] if tot else []
        else:
            return self.answer(40002, "The stand-in serves data_level AUCTION_CAMPAIGN (with the "
                                      "campaign_id dimension) and AUCTION_ADVERTISER.")
        items, info = self.paging(req, rows, 1000)
        return self.answer(0, "OK", {"list": items, "page_info": info})

    def row(self, dims, m, metrics):
        out = {}
        for name in metrics:
            v = m[METRICS[name]]
            out[name] = "%d.%02d" % divmod(v, 100) if name in ("spend", "total_purchase_value") else str(v)
        return {"dimensions": dims, "metrics": out}
