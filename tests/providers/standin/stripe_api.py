"""Stripe: secret (sk_) or restricted (rk_) keys as Bearer or Basic auth;
list endpoints with limit/starting_after/ending_before/created[...] and
has_more; read limits of 25 requests/s in test mode and 100 in live mode
(429, code rate_limit); Stripe-Signature webhooks (t=...,v1=HMAC-SHA256 of
"t.body") that receivers check within 300 s."""

import base64
import hashlib
import hmac
import json

from . import data
from .core import CLOCK, COUNTERS, KEYS, RETRY_AFTER, Provider, Reply, Sliding, request_id
from .data import alnum

KEY_PATTERN = r"(sk|rk)_(test|live)_[A-Za-z0-9]{8,}"
API_VERSION = "2024-06-20"


def obj_id(prefix, *parts):
    return prefix + alnum(24, *parts)


class Stripe(Provider):
    name = "stripe"
    uses_keys = True
    defaults = {"test_reads_per_s": 25, "live_reads_per_s": 100,
                "webhook_secret": "whsec_standinstripesigningsecret0000"}
    routes = [
        ("GET", r"/v1/account", "account"),
        ("GET", r"/v1/balance", "balance"),
        ("GET", r"/v1/charges", "charges"),
        ("GET", r"/v1/charges/(?P<id>ch_\w+)", "charge"),
        ("GET", r"/v1/customers", "customers"),
        ("GET", r"/v1/refunds", "refunds"),
        ("GET", r"/v1/payment_intents", "payment_intents"),
    ]

    def setup(self):
        self.test_rate = Sliding(self.config["test_reads_per_s"], 1.0)
        self.live_rate = Sliding(self.config["live_reads_per_s"], 1.0)

    def error(self, status, etype, message, code=None, param=None):
        err = {"type": etype, "message": message}
        if code:
            err["code"] = code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            err["param"] = param
        return Reply(status, {"error": err}, [("Request-Id", "req_" + request_id()[:14])])

    def server_error(self, req, status):
        return self.error(status, "api_error", "An unknown error occurred")

    def not_found(self, req):
        return self.error(404, "invalid_request_error", f"Unrecognized request URL (GET: {req.path}).")

    def key_of(self, req):
        auth = req.header("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                return base64.b64decode(auth[6:]).decode().split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                return ""
        return req.bearer() or ""

    def auth(self, req):
        key = self.key_of(req)
        if not key:
            COUNTERS.add("auth_failures", self.name, "missing")
            raise self.error(401, "invalid_request_error", "You did not provide an API key. You need "
                             "to provide your API key in the Authorization header, using Bearer auth "
                             "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
        info, why = KEYS.lookup(self.name, key, KEY_PATTERN)
        masked = key[:8] + "*" * 4 + key[-4:]
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            raise self.error(401, "invalid_request_error",
                             f"{'Expired' if why == 'revoked' else 'Invalid'} API Key provided: {masked}",
                             "api_key_expired" if why == "revoked" else None)
        account = info.get("account") or "acct_" + alnum(16, "stripe-account", key)
        live = "_live_" in key
        limiter = self.live_rate if live else self.test_rate
        RETRY_AFTER.check(self.name, account)
        ok, _rem, reset = limiter.hit(account)
        if not ok:
            self.rate_limited(account, reset)
            raise self.error(429, "invalid_request_error", "Too many requests hit the API too quickly. "
                             "We recommend an exponential backoff of your requests.", "rate_limit")
        return account, live

    def reply(self, body):
        return Reply(200, body, [("Request-Id", "req_" + request_id()[:14]), ("Stripe-Version", API_VERSION)])

    def account(self, req):
        account, live = self.auth(req)
        return self.reply({"id": account, "object": "account", "country": "US",
                           "default_currency": data.currency_of("stripe", account).lower(),
                           "business_profile": {"name": f"Stand-in {account}"},
                           "charges_enabled": True, "details_submitted": True, "livemode": live})

    def balance(self, req):
        account, live = self.auth(req)
        cur = data.currency_of("stripe", account).lower()
        net = data.truth_orders("stripe", account, data.DATA_START, CLOCK.today())["values"]["net"]
        return self.reply({"object": "balance", "livemode": live,
                           "available": [{"amount": net, "currency": cur}],
                           "pending": [{"amount": 0, "currency": cur}]})

    # --- lists ---
    def listing(self, req, account, kind, rows):
        """rows: (object id, created, builder) newest first."""
        try:
            limit = int(req.q("limit", "10"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 100:
            raise self.error(400, "invalid_request_error", "Invalid integer: limit must be between 1 "
                             "and 100", "parameter_invalid_integer", "limit")
        for op in ("gt", "gte", "lt", "lte"):
            v = req.q(f"created[{op}]")
            if v is not None:
                try:
                    bound = int(v)
                except ValueError:
                    raise self.error(400, "invalid_request_error", f"Invalid integer: {v}",
                                     "parameter_invalid_integer", f"created[{op}]") from None
                test = {"gt": lambda c: c > bound, "gte": lambda c: c >= bound,
                        "lt": lambda c: c < bound, "lte": lambda c: c <= bound}[op]
                rows = [r for r in rows if test(r[1])]
        after, before = req.q("starting_after"), req.q("ending_before")
        if after and before:
            raise self.error(400, "invalid_request_error", "You may only specify one of these "
                             "parameters: ending_before, starting_after.")
        if after or before:
            mark = after or before
            pos = next((i for i, r in enumerate(rows) if r[0] == mark), None)
            if pos is None:
                raise self.error(400, "invalid_request_error", f"No such {kind}: '{mark}'",
                                 "resource_missing", "starting_after" if after else "ending_before")
            if after:
                chunk = rows[pos + 1: pos + 1 + limit]
                more = pos + 1 + limit < len(rows)
            else:
                chunk = rows[max(0, pos - limit):pos]
                more = pos - limit > 0
        else:
            chunk, more = rows[:limit], len(rows) > limit
        return self.reply({"object": "list", "url": req.prefix and req.path or req.path,
                           "has_more": more, "data": [r[2]() for r in chunk]})

    def orders_desc(self, account):
        return sorted(data.visible_orders("stripe", account),
                      key=lambda o: (-int(o["created_ts"]), -o["id"]))

    def charges(self, req):
        account, live = self.auth(req)
        rows = self.orders_desc(account)
        if req.q("customer"):
            rows = [o for o in rows if cus_id(account, o) == req.q("customer")]
        return self.listing(req, account, "charge", [(ch_id(account, o), int(o["created_ts"]),
                                                      lambda o=o: charge(account, o, live)) for o in rows])

    def charge(self, req):
        account, live = self.auth(req)
        for o in data.visible_orders("stripe", account):
            if ch_id(account, o) == req.params["id"]:
                return self.reply(charge(account, o, live))
        return self.error(404, "invalid_request_error", f"No such charge: '{req.params['id']}'",
                          "resource_missing", "id")

    def customers(self, req):
        account, live = self.auth(req)
        seen = {}
        for o in data.visible_orders("stripe", account):
            seen.setdefault(o["customer"]["id"], o)
        firsts = sorted(seen.values(), key=lambda o: (-int(o["created_ts"]), -o["id"]))
        return self.listing(req, account, "customer", [
            (cus_id(account, o), int(o["customer"]["created_ts"]), lambda o=o: customer(account, o, live))
            for o in firsts])

    def refunds(self, req):
        account, live = self.auth(req)
        rows = []
        for o in data.visible_orders("stripe", account):
            for r in data.visible_refunds(o):
                rows.append((o, r))
        rows.sort(key=lambda x: (-int(x[1]["created_ts"]), -x[1]["id"]))
        return self.listing(req, account, "refund", [
            (re_id(account, r), int(r["created_ts"]), lambda o=o, r=r: refund(account, o, r))
            for o, r in rows])

    def payment_intents(self, req):
        account, live = self.auth(req)
        rows = self.orders_desc(account)
        return self.listing(req, account, "payment_intent", [
            (pi_id(account, o), int(o["created_ts"]), lambda o=o: payment_intent(account, o, live))
            for o in rows])

    def truth(self, req):
        from .admin import day_range
        account = req.q("account")
        if not account:
            raise Reply(400, {"error": "account is required (acct_... as /v1/account answers)"})
        since, until = day_range(req)
        return Reply(200, data.truth_orders("stripe", account, since, until))

    def accounts_view(self, user):
        return [{"note": "Stripe accounts follow from the key: acct_ + a hash of the key, or the "
                         "account registered with it through /_admin/keys"}]

    # --- webhooks ---
    def webhook(self, spec):
        account = spec.get("account")
        if not account:
            raise Reply(400, {"error": "account (acct_...) is required"})
        topic = spec.get("topic", "charge.succeeded")
        orders = data.visible_orders("stripe", account)
        if spec.get("body") is not None:
            payload = spec["body"]
        else:
            o = orders[int(spec.get("index", -1))]
            obj = charge(account, o, False)
            if topic.startswith("charge.refund") and not o["refunds"]:
                obj["refunded"] = True
            payload = {"id": spec.get("event_id") or "evt_" + alnum(24, "evt", account, o["id"], topic),
                       "object": "event", "api_version": API_VERSION, "created": int(CLOCK.now()),
                       "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
                       "request": {"id": None, "idempotency_key": None}, "type": topic,
                       "account": account}
        body = json.dumps(payload).encode()
        t = int(CLOCK.now() + float(spec.get("timestamp_offset_s", 0)))
        secret = spec.get("secret") or self.config["webhook_secret"]
        sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json; charset=utf-8",
                      "Stripe-Signature": f"t={t},v1={sig}", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"}


def ch_id(account, o):
    return obj_id("ch_", account, o["id"])


def pi_id(account, o):
    return obj_id("pi_", account, o["id"])


def cus_id(account, o):
    return "cus_" + alnum(14, account, o["customer"]["id"])


def re_id(account, r):
    return obj_id("re_", account, r["id"])


def meta(o):
    a = o["attribution"]
    out = {"order_number": str(o["number"])}
    for k in ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term"):
        if a[k]:
            out[k] = a[k]
    if a["click_id"]:
        out[a["click_id_param"]] = a["click_id"]
    return out


def charge(account, o, live):
    rs = data.visible_refunds(o)
    refunded = sum(r["amount"] for r in rs)
    c = o["customer"]
    return {"id": ch_id(account, o), "object": "charge", "amount": o["total"],
            "amount_captured": o["total"], "amount_refunded": refunded,
            "balance_transaction": obj_id("txn_", account, o["id"]), "captured": True,
            "created": int(o["created_ts"]), "currency": o["currency"].lower(),
            "customer": cus_id(account, o), "description": f"Order #{o['number']}",
            "livemode": live, "metadata": meta(o), "paid": True, "payment_intent": pi_id(account, o),
            "refunded": refunded >= o["total"], "status": "succeeded",
            "billing_details": {"email": c["email"], "name": f"{c['first_name']} {c['last_name']}"},
            "refunds": {"object": "list", "data": [refund(account, o, r) for r in rs],
                        "has_more": False, "url": f"/v1/charges/{ch_id(account, o)}/refunds"}}


def payment_intent(account, o, live):
    return {"id": pi_id(account, o), "object": "payment_intent", "amount": o["total"],
            "amount_received": o["total"], "created": int(o["created_ts"]),
            "currency": o["currency"].lower(), "customer": cus_id(account, o), "livemode": live,
            "latest_charge": ch_id(account, o), "metadata": meta(o), "status": "succeeded"}


def refund(account, o, r):
    return {"id": re_id(account, r), "object": "refund", "amount": r["amount"],
            "charge": ch_id(account, o), "created": int(r["created_ts"]),
            "currency": o["currency"].lower(), "payment_intent": pi_id(account, o),
            "reason": "requested_by_customer", "status": "succeeded"}


def customer(account, o, live):
    c = o["customer"]
    return {"id": cus_id(account, o), "object": "customer", "created": int(c["created_ts"]),
            "email": c["email"], "name": f"{c['first_name']} {c['last_name']}", "livemode": live,
            "currency": o["currency"].lower(), "metadata": {}}

