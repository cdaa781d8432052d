"""Google Ads API (REST) and Google OAuth, and YouTube video campaigns read
through the same API. GAQL search with fixed 10,000-row pages and
nextPageToken, searchStream, listAccessibleCustomers; developer-token;
RESOURCE_EXHAUSTED quota errors. No webhooks (Google Ads has none)."""

import datetime as dt
import hashlib
import re

from . import data
from .ads import AdData
from .core import (CLOCK, COUNTERS, RETRY_AFTER, TOKENS, Bucket, Daily, Provider, Reply,
                   cursor_decode, cursor_encode, redirect, request_id)

PAGE = 10000
V = r"/(?P<version>v\d+)"
CUSTOMER_FIELDS = {"customer.id": "id", "customer.descriptive_name": "descriptiveName",
                   "customer.currency_code": "currencyCode", "customer.time_zone": "timeZone",
                   "customer.resource_name": "resourceName"}
CAMPAIGN_FIELDS = {"campaign.id": "id", "campaign.name": "name", "campaign.status": "status",
                   "campaign.advertising_channel_type": "advertisingChannelType",
                   "campaign.start_date": "startDate", "campaign.end_date": "endDate",
                   "campaign.resource_name": "resourceName"}
METRIC_FIELDS = {"metrics.cost_micros": ("costMicros", "spend"),
                 "metrics.impressions": ("impressions", "impressions"),
                 "metrics.clicks": ("clicks", "clicks"),
                 "metrics.conversions": ("conversions", "conversions"),
                 "metrics.conversions_value": ("conversionsValue", "conversion_value"),
                 "metrics.video_views": ("videoViews", "video_views"),
                 "metrics.video_trueview_views": ("videoTrueviewViews", "video_views")}
SEGMENT_FIELDS = {"segments.date": "date"}
DURING = {"TODAY": (0, 0), "YESTERDAY": (1, 1), "LAST_7_DAYS": (7, 1), "LAST_14_DAYS": (14, 1),
          "LAST_30_DAYS": (30, 1), "LAST_90_DAYS": (90, 1)}


def camel(field):
    head, tail = field.split(".", 1)
    parts = tail.split("_")
    return head + "." + parts[0] + "".join(p.title() for p in parts[1:])


class GaqlError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def parse_gaql(text):
    q = " ".join(text.split())
    m = re.fullmatch(r"(?i)SELECT (?P<sel>.+?) FROM (?P<res>\w+)(?: WHERE (?P<where>.+?))?"
                     r"(?: ORDER BY (?P<order>.+?))?(?: LIMIT (?P<limit>\d+))?(?: PARAMETERS .+)?", q)
    if not m:
        raise GaqlError("QUERY_ERROR", "Error in query: unexpected input")
    fields = [f.strip() for f in m.group("sel").split(",")]
    res = m.group("res").lower()
    known = {"customer": set(CUSTOMER_FIELDS), "campaign": set(CAMPAIGN_FIELDS) | set(CUSTOMER_FIELDS)}
    if res not in known:
        raise GaqlError("QUERY_ERROR", f"Error in query: the stand-in serves FROM customer and "
                                       f"FROM campaign, not {res}")
    allowed = known[res] | set(METRIC_FIELDS) | set(SEGMENT_FIELDS)
    for f in fields:
        if f not in allowed:
            raise GaqlError("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{f}'.")
    conds = []
    if m.group("where"):
        conds = [c.strip() for c in re.split(r"(?i)\s+AND\s+", m.group("where"))]
        # BETWEEN a AND b was split on its AND: join it back.
        joined, i = [], 0
        while i < len(conds):
            if re.search(r"(?i) BETWEEN '[^']+'$", conds[i]) and i + 1 < len(conds):
                joined.append(conds[i] + " AND " + conds[i + 1])
                i += 2
            else:
                joined.append(conds[i])
                i += 1
        conds = [parse_cond(c, allowed) for c in joined]
    order = []
    if m.group("order"):
        for part in m.group("order").split(","):
            bits = part.split()
            order.append((bits[0], len(bits) > 1 and bits[1].upper() == "DESC"))
    return {"fields": fields, "resource": res, "where": conds, "order": order,
            "limit": int(m.group("limit")) if m.group("limit") else None}


def parse_cond(c, allowed):
    m = re.fullmatch(r"(?i)([\w.]+)\s*(=|!=|>=|<=|>|<|NOT IN|IN|BETWEEN|DURING|LIKE)\s*(.+)", c)
    if not m:
        raise GaqlError("QUERY_ERROR", f"Error in query: cannot read condition '{c}'")
    field, op, value = m.group(1), m.group(2).upper(), m.group(3).strip()
    if field not in allowed:
        raise GaqlError("UNRECOGNIZED_FIELD", f"Unrecognized field in the query: '{field}'.")
    if op in ("IN", "NOT IN"):
        vals = [v.strip().strip("'\"") for v in value.strip("()").split(",")]
    elif op == "BETWEEN":
        a, b = re.split(r"(?i)\s+AND\s+", value)
        vals = [a.strip().strip("'\""), b.strip().strip("'\"")]
    else:
        vals = value.strip("'\"")
    if field == "segments.date":
        try:
            if op == "DURING":
                if vals.upper() not in DURING:
                    raise GaqlError("QUERY_ERROR", f"Invalid date range literal {vals}")
            else:
                for v in (vals if isinstance(vals, list) else [vals]):
                    dt.date.fromisoformat(v)
        except ValueError:
            raise GaqlError("QUERY_ERROR", f"Invalid date: {vals}") from None
    return (field, op, vals)


class GoogleAds(AdData, Provider):
    name = "google_ads"
    data_ns = "google_ads"
    defaults = {"access_ttl": 3599, "refresh_ttl": None, "rotate_refresh": False,
                "developer_token": "standin-developer-token", "qps_burst": 10, "qps": 5,
                "daily_operations": 15000, "retry_delay_s": 30}
    routes = [
        ("GET", r"/o/oauth2/v2/auth", "authorize"),
        ("POST", r"/token", "token"),
        ("POST", r"/revoke", "revoke"),
        ("GET", r"/tokeninfo", "tokeninfo"),
        ("GET", V + r"/customers:listAccessibleCustomers", "list_customers"),
        ("POST", V + r"/customers/(?P<cid>\d+)/googleAds:search", "search"),
        ("POST", V + r"/customers/(?P<cid>\d+)/googleAds:searchStream", "search_stream"),
    ]

    def setup(self):
        self.rate = Bucket(self.config["qps_burst"], self.config["qps"])
        self.daily = Daily(self.config["daily_operations"])

    def error(self, status, code, message, ads_errors=None):
        body = {"error": {"code": status, "message": message, "status": code}}
        if ads_errors:
            body["error"]["details"] = [{
                "@type": "type.googleapis.com/google.ads.googleads.v17.errors.GoogleAdsFailure",
                "errors": ads_errors, "requestId": request_id()}]
        return Reply(status, body)

    def server_error(self, req, status):
        code = {500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}.get(status, "INTERNAL")
        return self.error(status, code, "Internal error encountered." if status == 500 else
                          "The service is currently unavailable.")

    def not_found(self, req):
        return Reply(404, "<!DOCTYPE html><title>Error 404 (Not Found)!!1</title>", ctype="text/html")

    # --- Google OAuth ---
    def authorize(self, req):
        redirect_uri = req.q("redirect_uri")
        if req.q("client_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "Error 401: invalid_client. The OAuth client was not found.",
                         ctype="text/html")
        if req.q("response_type") != "code":
            return redirect(redirect_uri, {"error": "unsupported_response_type", "state": req.q("state", "")})
        if self.deny_requested(req):
            return redirect(redirect_uri, {"error": "access_denied", "state": req.q("state", "")})
        method = req.q("code_challenge_method", "plain" if req.q("code_challenge") else None)
        if method not in (None, "plain", "S256"):
            return redirect(redirect_uri, {"error": "invalid_request", "state": req.q("state", "")})
        grant = self.grant_for(req, req.q("client_id"), req.q("scope", ""),
                               {"offline": req.q("access_type") == "offline"})
        code = TOKENS.new_code(grant, redirect_uri, req.q("code_challenge"), method,
                               self.config["code_ttl"])
        params = {"state": req.q("state", ""), "code": code, "scope": req.q("scope", "")}
        return redirect(redirect_uri, params)

    def token(self, req):
        f = req.form()
        if f.get("client_id") != self.config["client_id"] or \
                f.get("client_secret") != self.config["client_secret"]:
            return Reply(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        cfg = self.config
        if f.get("grant_type") == "refresh_token":
            a, _r, why = TOKENS.refresh(self.name, f.get("refresh_token"), f["client_id"],
                                        cfg["access_ttl"], None, False, 0, "ya29.", "1//")
            if why:
                return Reply(400, {"error": "invalid_grant",
                                   "error_description": "Token has been expired or revoked."})
            return Reply(200, {"access_token": a.value, "expires_in": a.expires_in(),
                               "scope": a.grant.scope, "token_type": "Bearer"})
        if f.get("grant_type") != "authorization_code":
            return Reply(400, {"error": "unsupported_grant_type",
                               "error_description": "Invalid grant_type: " + f.get("grant_type", "")})
        grant, why = TOKENS.redeem(self.name, f.get("code"), f["client_id"], f.get("redirect_uri"),
                                   f.get("code_verifier"))
        if why:
            return Reply(400, {"error": "invalid_grant", "error_description":
                               "Missing code verifier." if why == "pkce" else "Bad Request"})
        a, r = TOKENS.issue(grant, cfg["access_ttl"], None, grant.extra.get("offline"), "ya29.", "1//")
        out = {"access_token": a.value, "expires_in": a.expires_in(), "scope": grant.scope,
               "token_type": "Bearer"}
        if r:
            out["refresh_token"] = r.value
        return Reply(200, out)

    def revoke(self, req):
        token = req.q("token") or req.form().get("token")
        if not TOKENS.revoke_token(self.name, token):
            return Reply(400, {"error": "invalid_token", "error_description": "Token expired or revoked"})
        return Reply(200, {})

    def tokeninfo(self, req):
        t, why = TOKENS.check(self.name, req.q("access_token"))
        if why:
            return Reply(400, {"error": "invalid_token", "error_description": "Invalid Value"})
        return Reply(200, {"aud": t.grant.client_id, "scope": t.grant.scope,
                           "expires_in": str(t.expires_in()), "access_type":
                           "offline" if t.grant.extra.get("offline") else "online"})

    # --- the Ads API ---
    def auth(self, req, cid=None):
        token = req.bearer()
        t, why = TOKENS.check(self.name, token)
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            code = {"expired": "OAUTH_TOKEN_EXPIRED", "revoked": "OAUTH_TOKEN_REVOKED"}.get(why, "OAUTH_TOKEN_INVALID")
            raise self.error(401, "UNAUTHENTICATED", "Request had invalid authentication "
                             "credentials. Expected OAuth 2 access token, login cookie or other "
                             "valid authentication credential.",
                             [{"errorCode": {"authenticationError": code},
                               "message": "Authentication of the request failed."}])
        dev = req.header("developer-token")
        if dev != self.config["developer_token"]:
            code = "DEVELOPER_TOKEN_PARAMETER_MISSING" if not dev else "DEVELOPER_TOKEN_INVALID"
            raise self.error(401 if not dev else 400, "UNAUTHENTICATED" if not dev else "INVALID_ARGUMENT",
                             "Request contains an invalid argument." if dev else
                             "The developer token is missing.",
                             [{"errorCode": {"authenticationError" if not dev else "requestError": code},
                               "message": "The developer token is not valid." if dev else
                               "Developer token parameter is missing."}])
        if cid is not None and cid not in data.accounts_of(self.data_ns, t.grant.user):
            raise self.error(403, "PERMISSION_DENIED", "The caller does not have permission",
                             [{"errorCode": {"authorizationError": "USER_PERMISSION_DENIED"},
                               "message": "User doesn't have permission to access customer."}])
        return t

    def quota(self, dev_token, cid):
        RETRY_AFTER.check(self.name, cid)
        ok, _ = self.daily.hit(dev_token)
        if not ok:
            self.rate_limited(cid, self.daily.seconds_to_midnight())
            raise self.quota_error("RESOURCE_EXHAUSTED", "Number of operations for basic access",
                                   int(self.daily.seconds_to_midnight()), "DEVELOPER")
        ok, _ = self.rate.take(cid, 1)
        if not ok:
            delay = self.config["retry_delay_s"]
            self.rate_limited(cid, delay)
            raise self.quota_error("RESOURCE_TEMPORARILY_EXHAUSTED",
                                   "Requests per service per method", delay, "ACCOUNT")

    def quota_error(self, code, rate_name, delay, scope):
        return self.error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                          [{"errorCode": {"quotaError": code},
                            "message": f"Too many requests. Retry in {delay} seconds.",
                            "details": {"quotaErrorDetails": {"rateScope": scope, "rateName": rate_name,
                                                              "retryDelay": f"{delay}s"}}}])

    def list_customers(self, req):
        t = self.auth(req)
        return Reply(200, {"resourceNames": [f"customers/{c}" for c in
                                             data.accounts_of(self.data_ns, t.grant.user)]})

    def run_query(self, req):
        cid = req.params["cid"]
        self.auth(req, cid)
        self.quota(req.header("developer-token"), cid)
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            raise self.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                             [{"errorCode": {"queryError": "QUERY_NOT_SET"}, "message": "query is required"}])
        if "pageSize" in body:
            raise self.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                             [{"errorCode": {"requestError": "PAGE_SIZE_NOT_SUPPORTED"},
                               "message": "Setting the page size is not supported."}])
        try:
            q = parse_gaql(body["query"])
            rows, mask = self.rows(cid, q)
        except GaqlError as e:
            raise self.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                             [{"errorCode": {"queryError": e.code}, "message": str(e)}]) from None
        return body, rows, mask

    def search(self, req):
        body, rows, mask = self.run_query(req)
        qhash = hashlib.sha1((req.params["cid"] + body["query"]).encode()).hexdigest()[:16]
        offset = 0
        if body.get("pageToken"):
            tok = cursor_decode(body["pageToken"])
            if not tok or tok.get("q") != qhash:
                raise self.error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                 [{"errorCode": {"requestError": "INVALID_PAGE_TOKEN"},
                                   "message": "Page token is invalid."}])
            offset = tok["o"]
        page = rows[offset:offset + PAGE]
        out = {"results": [build() for build in page], "fieldMask": mask}
        if offset + PAGE < len(rows):
            out["nextPageToken"] = cursor_encode({"q": qhash, "o": offset + PAGE})
        if body.get("returnTotalResultsCount"):
            out["totalResultsCount"] = str(len(rows))
        out["requestId"] = request_id()
        return Reply(200, out)

    def search_stream(self, req):
        _body, rows, mask = self.run_query(req)
        batches = [{"results": [b() for b in rows[i:i + PAGE]], "fieldMask": mask,
                    "requestId": request_id()} for i in range(0, max(1, len(rows)), PAGE)]
        return Reply(200, batches)

    def rows(self, cid, q):
        """Row builders for a parsed query (rows are made only when served)."""
        fields = q["fields"]
        ns = self.data_ns
        cur = data.currency_of(ns, cid)
        customer = {"resourceName": f"customers/{cid}", "id": cid,
                    "descriptiveName": f"Stand-in account {cid}", "currencyCode": cur,
                    "timeZone": "Etc/UTC"}
        mask = ",".join(camel(f) for f in fields)
        metric_fields = [f for f in fields if f in METRIC_FIELDS]
        by_date = "segments.date" in fields
        since, until, camp_filters = data.DATA_START, CLOCK.today(), []
        for field, op, vals in q["where"]:
            if field == "segments.date":
                since, until = narrow(since, until, op, vals)
            elif field.startswith("campaign."):
                camp_filters.append((CAMPAIGN_FIELDS[field], op, vals))
            elif field.startswith("metrics."):
                continue    # every row served has impressions
        if q["resource"] == "customer":
            if not metric_fields:
                return [lambda: pick_fields({"customer": customer}, fields)], mask
            total = data.truth_ads(ns, cid, since, until)["values"].get("total")
            row = {"customer": customer}
            if total:
                row["metrics"] = metric_values(total, metric_fields)
                return [lambda: pick_fields(row, fields)], mask
            return [], mask
        camps = [c for c in data.campaigns(ns, cid) if all(
            match(campaign_json(cid, c), k, op, v) for k, op, v in camp_filters)]
        allowed = {c["id"] for c in camps}
        builders = []
        if not metric_fields and not by_date:
            for c in camps:
                builders.append(lambda c=c: pick_fields({"customer": customer,
                                                         "campaign": campaign_json(cid, c)}, fields))
            return order_limit(builders, q), mask
        if by_date:
            pairs = [(d, c) for d, c in data.ad_rows(ns, cid, since, until) if c["id"] in allowed]
            if any(f == "segments.date" and desc for f, desc in q["order"]):
                pairs.reverse()
            today = CLOCK.today()
            for d, c in pairs:
                def build(d=d, c=c):
                    m = data.metrics(ns, cid, c, d, today=today)
                    return pick_fields({"customer": customer, "campaign": campaign_json(cid, c),
                                        "metrics": metric_values(m, metric_fields),
                                        "segments": {"date": d.isoformat()}}, fields)
                builders.append(build)
        else:
            per = data.truth_ads(ns, cid, since, until, by="campaign")["values"]
            for c in camps:
                if c["id"] in per:
                    builders.append(lambda c=c: pick_fields({
                        "customer": customer, "campaign": campaign_json(cid, c),
                        "metrics": metric_values(per[c["id"]], metric_fields)}, fields))
        return order_limit(builders, q), mask

    def truth(self, req):
        return AdData.truth(self, req)


def narrow(since, until, op, vals):
    today = CLOCK.today()
    if op == "BETWEEN":
        return max(since, dt.date.fromisoformat(vals[0])), min(until, dt.date.fromisoformat(vals[1]))
    if op == "DURING":
        back, end = DURING[vals.upper()]
        return max(since, today - dt.timedelta(days=back)), min(until, today - dt.timedelta(days=end))
    d = dt.date.fromisoformat(vals)
    if op in (">=", ">"):
        return max(since, d + dt.timedelta(days=op == ">")), until
    if op in ("<=", "<"):
        return since, min(until, d - dt.timedelta(days=op == "<"))
    if op == "=":
        return max(since, d), min(until, d)
    raise GaqlError("QUERY_ERROR", f"Operator {op} is not valid for segments.date")


def match(camp, key, op, vals):
    v = str(camp.get(key))
    if op == "=":
        return v == vals
    if op == "!=":
        return v != vals
    if op == "IN":
        return v in vals
    if op == "NOT IN":
        return v not in vals
    if op == "LIKE":
        return re.fullmatch(vals.replace("%", ".*"), v) is not None
    raise GaqlError("QUERY_ERROR", f"Operator {op} is not served on {key}")


def campaign_json(cid, c):
    return {"resourceName": f"customers/{cid}/campaigns/{c['id']}", "id": c["id"], "name": c["name"],
            "status": data.status_of(c), "advertisingChannelType": c["channel"],
            "startDate": c["start"].isoformat(),
            "endDate": (c["end"] or dt.date(2037, 12, 30)).isoformat()}


def metric_values(m, fields):
    out = {}
    for f in fields:
        name, key = METRIC_FIELDS[f]
        v = m[key]
        if key == "spend":
            out[name] = str(v * 10000)
        elif key == "conversion_value":
            out[name] = v / 100.0
        elif key == "conversions":
            out[name] = float(v)
        else:
            out[name] = str(v)
    return out


def pick_fields(row, fields):
    """Keeps the selected fields (and each resource's resourceName)."""
    out = {}
    for f in fields:
        head, tail = f.split(".", 1)
        src = row.get(head) or {}
        key = camel(f).split(".", 1)[1]
        if head in ("metrics", "segments"):
            if key in src:
                out.setdefault(head, {})[key] = src[key]
            continue
        obj = out.setdefault(head, {"resourceName": src.get("resourceName")})
        if key in src:
            obj[key] = src[key]
    return out


def order_limit(builders, q):
    return builders[:q["limit"]] if q["limit"] else builders


class YouTube(GoogleAds):
    """YouTube video campaigns: the Google Ads API itself (the same accounts
    and data set; the connector selects advertising_channel_type = VIDEO and
    metrics.video_views). Its own tokens, limits and counters here; at
    Google they are one host and one quota."""
    name = "youtube"
    data_ns = "google_ads"
