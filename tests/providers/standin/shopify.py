"""Shopify: OAuth install (hmac-signed callback), expiring offline tokens with
rotating refresh tokens, the GraphQL Admin API (orders, customers, shop) with
cursor pages and the calculated-cost leaky bucket (THROTTLED), a REST subset
with the request leaky bucket (429 + Retry-After), and signed webhooks.

A shop's subdomain is the first path segment: https://{shop}.myshopify.com/X
is {base}/{shop}/X."""

import base64
import hashlib
import hmac
import json
import re
import urllib.parse

from . import data, gql
from .core import (CLOCK, COUNTERS, RETRY_AFTER, TOKENS, Bucket, Provider, Reply,
                   cursor_decode, cursor_encode, iso, new_secret, parse_time, redirect)

API = r"/(?P<shop>[a-z0-9][a-z0-9-]*)(?:\.myshopify\.com)?"


def money(minor):
    return "%d.%02d" % divmod(minor, 100)


def gid(kind, n):
    return f"gid://shopify/{kind}/{n}"


# --- GraphQL types: field -> None (scalar), ("obj", T), ("conn", T), ("list", T)
O, C, L = "obj", "conn", "list"
TYPES = {
    "QueryRoot": {"shop": (O, "Shop"), "orders": (C, "Order"), "order": (O, "Order"),
                  "customers": (C, "Customer"), "customer": (O, "Customer")},
    "Shop": dict.fromkeys(("id", "name", "email", "myshopifyDomain", "currencyCode",
                           "ianaTimezone", "url")) | {"plan": (O, "ShopPlan")},
    "ShopPlan": dict.fromkeys(("displayName", "partnerDevelopment", "shopifyPlus")),
    "Order": dict.fromkeys(("id", "legacyResourceId", "name", "createdAt", "updatedAt",
                            "processedAt", "cancelledAt", "closedAt", "currencyCode",
                            "presentmentCurrencyCode", "displayFinancialStatus", "email",
                            "taxesIncluded", "discountCodes", "tags", "test", "sourceName",
                            "landingPageUrl", "referrerUrl", "confirmed")) | {
        "customer": (O, "Customer"), "totalPriceSet": (O, "MoneyBag"),
        "subtotalPriceSet": (O, "MoneyBag"), "totalDiscountsSet": (O, "MoneyBag"),
        "totalShippingPriceSet": (O, "MoneyBag"), "totalTaxSet": (O, "MoneyBag"),
        "totalRefundedSet": (O, "MoneyBag"), "currentTotalPriceSet": (O, "MoneyBag"),
        "lineItems": (C, "LineItem"), "refunds": (L, "Refund"),
        "customerJourneySummary": (O, "CustomerJourneySummary")},
    "MoneyBag": {"shopMoney": (O, "MoneyV2"), "presentmentMoney": (O, "MoneyV2")},
    "MoneyV2": dict.fromkeys(("amount", "currencyCode")),
    "LineItem": dict.fromkeys(("id", "title", "name", "quantity", "sku")) | {
        "variant": (O, "ProductVariant"), "product": (O, "Product"),
        "originalUnitPriceSet": (O, "MoneyBag"), "originalTotalSet": (O, "MoneyBag")},
    "ProductVariant": dict.fromkeys(("id", "legacyResourceId", "sku", "title")),
    "Product": dict.fromkeys(("id", "legacyResourceId", "title", "handle")),
    "Refund": dict.fromkeys(("id", "legacyResourceId", "createdAt", "note")) | {
        "totalRefundedSet": (O, "MoneyBag")},
    "Customer": dict.fromkeys(("id", "legacyResourceId", "email", "firstName", "lastName",
                               "displayName", "createdAt", "updatedAt", "numberOfOrders")) | {
        "amountSpent": (O, "MoneyV2")},
    "CustomerJourneySummary": dict.fromkeys(("ready", "daysToConversion", "customerOrderIndex")) | {
        "firstVisit": (O, "CustomerVisit"), "lastVisit": (O, "CustomerVisit"),
        "momentsCount": (O, "Count")},
    "CustomerVisit": dict.fromkeys(("id", "landingPage", "referrerUrl", "source", "sourceType",
                                    "sourceDescription", "occurredAt", "referralCode")) | {
        "utmParameters": (O, "UTMParameters")},
    "UTMParameters": dict.fromkeys(("source", "medium", "campaign", "content", "term")),
    "Count": dict.fromkeys(("count", "precision")),
    "PageInfo": dict.fromkeys(("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")),
}
CONNECTIONS = {(t, f): v[1] for t, fs in TYPES.items() for f, v in fs.items() if v and v[0] == C}
OBJECTS = {(t, f): v[1] for t, fs in TYPES.items() for f, v in fs.items() if v and v[0] in (O, L)}
MAX_FIRST = 250
MAX_COST = 1000


class Shopify(Provider):
    name = "shopify"
    client_secret_prefix = "shpss_"
    defaults = {"access_ttl": 3600, "refresh_ttl": 90 * 86400, "rotate_refresh": True,
                "refresh_grace_s": 0, "expiring_tokens": True, "gql_bucket": 2000,
                "gql_restore_per_s": 100, "rest_bucket": 40, "rest_leak_per_s": 2,
                "api_versions": ["2024-10", "2025-01", "2025-04", "2025-07", "2025-10"]}
    routes = [
        ("GET", API + r"/admin/oauth/authorize", "authorize"),
        ("POST", API + r"/admin/oauth/access_token", "access_token"),
        ("POST", API + r"/admin/api/(?P<version>[0-9-]+|unstable)/graphql\.json", "graphql"),
        ("GET", API + r"/admin/api/(?P<version>[0-9-]+|unstable)/shop\.json", "rest_shop"),
        ("GET", API + r"/admin/api/(?P<version>[0-9-]+|unstable)/orders\.json", "rest_orders"),
    ]

    def setup(self):
        self.gql_bucket = Bucket(self.config["gql_bucket"], self.config["gql_restore_per_s"])
        self.rest_bucket = Bucket(self.config["rest_bucket"], self.config["rest_leak_per_s"])

    def server_error(self, req, status):
        return Reply(status, {"errors": "Internal Server Error" if status == 500 else
                              "Service Unavailable"})

    def not_found(self, req):
        return Reply(404, {"errors": "Not Found"})

    # --- OAuth ---
    def install_hmac(self, params):
        msg = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k not in ("hmac", "signature"))
        return hmac.new(self.config["client_secret"].encode(), msg.encode(), hashlib.sha256).hexdigest()

    def authorize(self, req):
        shop = req.params["shop"] + ".myshopify.com"
        redirect_uri = req.q("redirect_uri")
        if req.q("client_id") != self.config["client_id"] or not redirect_uri:
            return Reply(400, "Oauth error invalid_request: The client_id or redirect_uri is "
                         "not valid", ctype="text/html")
        if self.deny_requested(req):
            return redirect(redirect_uri, {"error": "access_denied", "state": req.q("state", "")})
        grant = self.grant_for(req, req.q("client_id"), req.q("scope", ""), {"shop": req.params["shop"]})
        code = TOKENS.new_code(grant, redirect_uri, ttl=self.config["code_ttl"])
        params = {"code": code, "host": base64.b64encode(f"{shop}/admin".encode()).decode(),
                  "shop": shop, "state": req.q("state", ""), "timestamp": str(int(CLOCK.now()))}
        params["hmac"] = self.install_hmac(params)
        return redirect(redirect_uri, params)

    def token_error(self, description, error="invalid_request"):
        return Reply(400, {"error": error, "error_description": description})

    def access_token(self, req):
        f = req.form_or_json()
        if f.get("client_id") != self.config["client_id"] or \
                f.get("client_secret") != self.config["client_secret"]:
            return self.token_error("Oauth error invalid_request: The client credentials are "
                                    "invalid", "invalid_client")
        cfg = self.config
        if f.get("grant_type") == "refresh_token":
            a, r, why = TOKENS.refresh(self.name, f.get("refresh_token"), f["client_id"],
                                       cfg["access_ttl"], cfg["refresh_ttl"], cfg["rotate_refresh"],
                                       cfg["refresh_grace_s"], "shpat_", "shprt_")
            if why:
                return self.token_error(f"The refresh token is {why}", "invalid_grant")
            return Reply(200, self.token_body(a, r))
        grant, why = TOKENS.redeem(self.name, f.get("code"), f["client_id"])
        if why:
            return self.token_error("The authorization code was not found or was already used",
                                    "invalid_grant")
        if grant.extra.get("shop") != req.params["shop"]:
            return self.token_error("The authorization code belongs to another shop", "invalid_grant")
        expiring = str(f.get("expiring", "1" if cfg["expiring_tokens"] else "0")) in ("1", "true")
        a, r = TOKENS.issue(grant, cfg["access_ttl"] if expiring else None, cfg["refresh_ttl"],
                            expiring, "shpat_", "shprt_")
        return Reply(200, self.token_body(a, r))

    def token_body(self, a, r):
        out = {"access_token": a.value, "scope": a.grant.scope}
        if a.expires is not None:
            out["expires_in"] = a.expires_in()
        if r is not None:
            out["refresh_token"] = r.value
            out["refresh_token_expires_in"] = r.expires_in()
        return out

    def auth(self, req):
        t, why = TOKENS.check(self.name, req.header("X-Shopify-Access-Token"))
        if why or t.grant.extra.get("shop") != req.params["shop"]:
            COUNTERS.add("auth_failures", self.name, why or "shop")
            raise Reply(401, {"errors": "[API] Invalid API key or access token (unrecognized "
                                        "login or wrong password)"})
        if req.params.get("version") not in self.config["api_versions"] + ["unstable"]:
            raise Reply(404, {"errors": "Not Found"})
        return t

    # --- GraphQL ---
    def graphql(self, req):
        t = self.auth(req)
        shop = req.params["shop"]
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return Reply(400, {"errors": {"query": "Required parameter missing or invalid"}})
        try:
            fields = gql.parse(body["query"], body.get("variables"))
        except gql.GraphQLError as e:
            return Reply(200, {"errors": [{"message": str(e), "locations": [{"line": 1, "column": 1}]}]})
        requested = gql.cost(fields, CONNECTIONS, OBJECTS)
        key = (t.grant.client_id, shop)
        if requested > MAX_COST:
            return Reply(200, {"errors": [{"message": f"Query cost is {requested}, which exceeds "
                                           f"the single query max cost limit ({MAX_COST}).",
                                           "extensions": {"code": "MAX_COST_EXCEEDED",
                                                          "cost": requested, "maxCost": MAX_COST}}]})
        RETRY_AFTER.check(self.name, str(key))
        ok, avail = self.gql_bucket.take(key, requested)
        status = {"maximumAvailable": float(self.config["gql_bucket"]),
                  "currentlyAvailable": int(avail),
                  "restoreRate": float(self.config["gql_restore_per_s"])}
        if not ok:
            wait = (requested - avail) / self.config["gql_restore_per_s"]
            self.rate_limited(str(key), wait)
            return Reply(200, {"errors": [{"message": "Throttled", "extensions": {
                "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": None,
                                        "throttleStatus": status}}})
        actual_counts = {}
        try:
            out = self.resolve("QueryRoot", Root(shop), fields, actual_counts)
        except gql.GraphQLError as e:
            self.gql_bucket.give(key, requested)
            return Reply(200, {"errors": [{"message": str(e)}]})
        actual = gql.cost(fields, CONNECTIONS, OBJECTS, actual=actual_counts)
        self.gql_bucket.give(key, requested - actual)
        status["currentlyAvailable"] = int(self.gql_bucket.level(key))
        return Reply(200, {"data": out, "extensions": {"cost": {
            "requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}}})

    def resolve(self, typename, src, fields, counts):
        if src is None:
            return None
        spec = TYPES[typename]
        out = {}
        for f in fields:
            if f.name == "__typename":
                out[f.key] = typename
                continue
            if f.name not in spec:
                raise gql.GraphQLError(f"Field '{f.name}' doesn't exist on type '{typename}'")
            kind = spec[f.name]
            value = src.get(f.name, f.args)
            if kind is None:
                out[f.key] = value
            elif kind[0] == O:
                out[f.key] = self.resolve(kind[1], value, f.selections or [], counts)
            elif kind[0] == L:
                out[f.key] = [self.resolve(kind[1], v, f.selections or [], counts) for v in value]
            else:
                items, cursors, has_next, has_prev = value
                counts[id(f)] = len(items)
                out[f.key] = self.connection(kind[1], items, cursors, has_next, has_prev,
                                             f.selections or [], counts)
        return out

    def connection(self, node_type, items, cursors, has_next, has_prev, fields, counts):
        out = {}
        for f in fields:
            if f.name == "edges":
                edges = []
                for item, cur in zip(items, cursors):
                    e = {}
                    for s in f.selections or []:
                        if s.name == "cursor":
                            e[s.key] = cur
                        elif s.name == "node":
                            e[s.key] = self.resolve(node_type, item, s.selections or [], counts)
                        else:
                            raise gql.GraphQLError(f"Field '{s.name}' doesn't exist on type "
                                                   f"'{node_type}Edge'")
                    edges.append(e)
                out[f.key] = edges
            elif f.name == "nodes":
                out[f.key] = [self.resolve(node_type, i, f.selections or [], counts) for i in items]
            elif f.name == "pageInfo":
                info = {"hasNextPage": has_next, "hasPreviousPage": has_prev,
                        "startCursor": cursors[0] if cursors else None,
                        "endCursor": cursors[-1] if cursors else None}
                out[f.key] = {s.key: info.get(s.name) for s in f.selections or []}
            else:
                raise gql.GraphQLError(f"Field '{f.name}' doesn't exist on type "
                                       f"'{node_type}Connection'")
        return out

    # --- REST subset ---
    def rest_limit(self, req, t):
        key = (t.grant.client_id, req.params["shop"])
        RETRY_AFTER.check(self.name, str(key))
        ok, avail = self.rest_bucket.take(key, 1)
        cap = self.config["rest_bucket"]
        used = f"{round(cap - avail)}/{cap}"
        if not ok:
            self.rate_limited(str(key), 2.0)
            raise Reply(429, {"errors": f"Exceeded {self.config['rest_leak_per_s']} calls per second "
                                        "for api client. Reduce request rates to resume "
                                        "uninterrupted service."},
                        [("Retry-After", "2.0"),
                         ("X-Shopify-Shop-Api-Call-Limit", f"{cap}/{cap}")])
        return used

    def rest_shop(self, req):
        t = self.auth(req)
        used = self.rest_limit(req, t)
        return Reply(200, {"shop": shop_rest(req.params["shop"])},
                     [("X-Shopify-Shop-Api-Call-Limit", used)])

    def rest_orders(self, req):
        t = self.auth(req)
        used = self.rest_limit(req, t)
        shop = req.params["shop"]
        limit = int(req.q("limit", "50"))
        if not 1 <= limit <= 250:
            return Reply(400, {"errors": {"limit": "must be between 1 and 250"}})
        info = cursor_decode(req.q("page_info", "")) if req.q("page_info") else None
        if req.q("page_info") and not info:
            return Reply(400, {"errors": {"page_info": "Invalid value."}})
        params = info["p"] if info else {k: v[0] for k, v in req.query.items() if k != "limit"}
        if info and set(req.query) - {"page_info", "limit", "fields"}:
            return Reply(400, {"errors": {"page_info": "page_info cannot be combined with "
                                          "other filters"}})
        rows = data.visible_orders("shopify", shop)
        for name, field in (("created_at", "created"), ("updated_at", "updated")):
            for op, test in (("_min", lambda a, b: a >= b), ("_max", lambda a, b: a <= b)):
                if params.get(name + op):
                    bound = parse_time(params[name + op])
                    rows = [o for o in rows if test(o["created_ts"] if field == "created"
                                                    else data.order_updated(o), bound)]
        rows.sort(key=lambda o: o["id"])
        start = info["o"] if info else 0
        page = rows[start:start + limit]
        headers = [("X-Shopify-Shop-Api-Call-Limit", used)]
        links = []
        base = f"{req.base_url}/{shop}/admin/api/{req.params['version']}/orders.json"
        if start + limit < len(rows):
            links.append(f'<{base}?limit={limit}&page_info={cursor_encode({"o": start + limit, "p": params})}>; rel="next"')
        if start > 0:
            links.append(f'<{base}?limit={limit}&page_info={cursor_encode({"o": max(0, start - limit), "p": params})}>; rel="previous"')
        if links:
            headers.append(("Link", ", ".join(links)))
        return Reply(200, {"orders": [order_rest(shop, o) for o in page]}, headers)

    def truth(self, req):
        from .admin import day_range
        shop = (req.q("account") or "").replace(".myshopify.com", "")
        if not shop:
            raise Reply(400, {"error": "account (the shop) is required"})
        since, until = day_range(req)
        return Reply(200, data.truth_orders("shopify", shop, since, until))

    def accounts_view(self, user):
        return [{"note": "a shop is any subdomain: its data set is seeded from its name; its orders name "
                         "campaigns of the ad accounts of the stand-in user with the shop's name"}]

    # --- webhooks ---
    def webhook(self, spec):
        shop = spec.get("account") or "demo"
        topic = spec.get("topic", "orders/create")
        if spec.get("body") is not None:
            payload = spec["body"]
        elif topic.startswith("orders/"):
            orders = data.visible_orders("shopify", shop)
            o = orders[int(spec.get("index", -1))]
            payload = order_rest(shop, o)
        elif topic == "app/uninstalled":
            payload = shop_rest(shop)
        else:
            payload = {"id": int(CLOCK.now())}
        body = json.dumps(payload).encode()
        secret = spec.get("secret") or self.config["client_secret"]
        sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic,
                   "X-Shopify-Hmac-Sha256": sig, "X-Shopify-Shop-Domain": f"{shop}.myshopify.com",
                   "X-Shopify-API-Version": self.config["api_versions"][-1],
                   "X-Shopify-Webhook-Id": spec.get("event_id") or new_secret("", 12),
                   "X-Shopify-Event-Id": spec.get("event_id") or new_secret("", 12),
                   "X-Shopify-Triggered-At": iso(CLOCK.now())}
        return body, headers


# --- the data as GraphQL sources ---

class Src:
    """A GraphQL source: get(field, args) answers one field."""

    def get(self, name, args):
        return getattr(self, "f_" + name)(args) if hasattr(self, "f_" + name) \
            else self.fields().get(name)

    def fields(self):
        return {}


def bag(minor, cur):
    m = {"amount": money(minor), "currencyCode": cur}
    return Dict({"shopMoney": Dict(m), "presentmentMoney": Dict(m)})


class Dict(Src):
    def __init__(self, d):
        self.d = d

    def fields(self):
        return self.d


def parse_search(text):
    """Shopify search syntax, the part a sync uses: created_at / updated_at /
    processed_at with :, :>, :>=, :<, :<= on a date or time; other terms are
    ignored, as Shopify ignores terms it cannot apply."""
    out = []
    for m in re.finditer(r"(created_at|updated_at|processed_at):(>=|<=|>|<)?'?\"?([0-9T:.+\-Z]+)", text or ""):
        field, op, value = m.group(1), m.group(2) or "=", m.group(3)
        try:
            out.append((field, op, parse_time(value)))
        except ValueError:
            continue
    return out


OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
       "<": lambda a, b: a < b, "=": lambda a, b: b <= a < b + 86400}


def paginate(items, args, sort_value):
    first, last = args.get("first"), args.get("last")
    if (first is None) == (last is None):
        raise gql.GraphQLError("you must provide one of first or last")
    n = first if first is not None else last
    if not 0 <= n <= MAX_FIRST:
        raise gql.GraphQLError(f"The first/last argument must be between 0 and {MAX_FIRST}")
    keyed = sorted(((sort_value(i), i["id"], i) for i in items), key=lambda t: (t[0], t[1]),
                   reverse=bool(args.get("reverse")))
    after, before = args.get("after"), args.get("before")
    if after:
        c = cursor_decode(after)
        if not c:
            raise gql.GraphQLError("Invalid cursor for current pagination")
        pos = [(k[0], k[1]) for k in keyed]
        mark = (c["v"], c["id"])
        idx = next((i for i, p in enumerate(pos) if (p > mark if not args.get("reverse") else p < mark)),
                   len(pos))
        keyed = keyed[idx:]
        has_prev = True
    else:
        has_prev = False
    if before:
        c = cursor_decode(before)
        if not c:
            raise gql.GraphQLError("Invalid cursor for current pagination")
        mark = (c["v"], c["id"])
        keyed = [k for k in keyed if ((k[0], k[1]) < mark if not args.get("reverse") else (k[0], k[1]) > mark)]
    if first is not None:
        page, has_next = keyed[:n], len(keyed) > n
    else:
        page, has_next = keyed[-n:] if n else [], False
        has_prev = len(keyed) > n
    return ([p[2] for p in page], [cursor_encode({"v": p[0], "id": p[1]}) for p in page],
            has_next, has_prev)


class Root(Src):
    def __init__(self, shop):
        self.shop = shop

    def f_shop(self, args):
        return Dict(shop_gql(self.shop))

    def orders_filtered(self, args):
        rows = data.visible_orders("shopify", self.shop)
        for field, op, bound in parse_search(args.get("query")):
            get = {"created_at": lambda o: o["created_ts"], "processed_at": lambda o: o["created_ts"],
                   "updated_at": data.order_updated}[field]
            rows = [o for o in rows if OPS[op](get(o), bound)]
        return rows

    def f_orders(self, args):
        sort = (args.get("sortKey") or "ID").upper()
        getter = {"ID": lambda o: o["id"], "CREATED_AT": lambda o: o["created_ts"],
                  "PROCESSED_AT": lambda o: o["created_ts"], "UPDATED_AT": data.order_updated}
        if sort not in getter:
            raise gql.GraphQLError(f"Argument 'sortKey' on Field 'orders' has an invalid value ({sort}).")
        items, cursors, nxt, prev = paginate(self.orders_filtered(args), args, getter[sort])
        return [OrderSrc(self.shop, o) for o in items], cursors, nxt, prev

    def f_order(self, args):
        want = str(args.get("id", "")).rsplit("/", 1)[-1]
        for o in data.visible_orders("shopify", self.shop):
            if str(o["id"]) == want:
                return OrderSrc(self.shop, o)
        return None

    def customers_list(self):
        seen = {}
        for o in data.visible_orders("shopify", self.shop):
            c = seen.setdefault(o["customer"]["id"], {"c": o["customer"], "orders": 0, "spent": 0,
                                                       "updated": 0, "cur": o["currency"]})
            c["orders"] += 1
            c["spent"] += o["total"]
            c["updated"] = max(c["updated"], o["created_ts"])
        return [{"id": k, **v} for k, v in seen.items()]

    def f_customers(self, args):
        rows = self.customers_list()
        for field, op, bound in parse_search(args.get("query")):
            get = {"created_at": lambda c: c["c"]["created_ts"], "updated_at": lambda c: c["updated"],
                   "processed_at": lambda c: c["updated"]}[field]
            rows = [c for c in rows if OPS[op](get(c), bound)]
        sort = (args.get("sortKey") or "ID").upper()
        getter = {"ID": lambda c: c["id"], "CREATED_AT": lambda c: c["c"]["created_ts"],
                  "UPDATED_AT": lambda c: c["updated"]}.get(sort, lambda c: c["id"])
        items, cursors, nxt, prev = paginate(rows, args, getter)
        return [CustomerSrc(c) for c in items], cursors, nxt, prev

    def f_customer(self, args):
        want = str(args.get("id", "")).rsplit("/", 1)[-1]
        for c in self.customers_list():
            if str(c["id"]) == want:
                return CustomerSrc(c)
        return None


class CustomerSrc(Src):
    def __init__(self, c):
        self.c = c

    def fields(self):
        c = self.c["c"]
        return {"id": gid("Customer", c["id"]), "legacyResourceId": str(c["id"]),
                "email": c["email"], "firstName": c["first_name"], "lastName": c["last_name"],
                "displayName": f"{c['first_name']} {c['last_name']}",
                "createdAt": iso(c["created_ts"]), "updatedAt": iso(self.c["updated"]),
                "numberOfOrders": str(self.c["orders"]),
                "amountSpent": Dict({"amount": money(self.c["spent"]), "currencyCode": self.c["cur"]})}


def visit(o, shop):
    a = o["attribution"]
    if not a["utm_source"]:
        return None
    utm = Dict({"source": a["utm_source"], "medium": a["utm_medium"], "campaign": a["utm_campaign"],
                "content": a["utm_content"], "term": a["utm_term"]})
    kind = {"cpc": "paid", "paid": "paid", "video": "paid", "email": "email",
            "organic": "organic"}.get(a["utm_medium"], "unknown")
    return Dict({"id": gid("CustomerVisit", o["id"]), "occurredAt": iso(o["created_ts"] - 1800),
                 "landingPage": data.landing_url(f"{shop}.myshopify.com", o["landing_handle"], a),
                 "referrerUrl": {"google": "https://www.google.com/", "facebook": "https://m.facebook.com/",
                                 "tiktok": "https://www.tiktok.com/", "youtube": "https://www.youtube.com/",
                                 "linkedin": "https://www.linkedin.com/"}.get(a["utm_source"]),
                 "source": a["utm_source"], "sourceType": kind, "sourceDescription": None,
                 "referralCode": None, "utmParameters": utm})


class OrderSrc(Src):
    def __init__(self, shop, o):
        self.shop, self.o = shop, o

    def fields(self):
        o, cur = self.o, self.o["currency"]
        refunds = data.visible_refunds(o)
        refunded = sum(r["amount"] for r in refunds)
        status = data.financial_status(o).upper()
        v = visit(o, self.shop)
        c = o["customer"]
        return {
            "id": gid("Order", o["id"]), "legacyResourceId": str(o["id"]), "name": f"#{o['number']}",
            "createdAt": iso(o["created_ts"]), "processedAt": iso(o["created_ts"]),
            "updatedAt": iso(data.order_updated(o)), "cancelledAt": None, "closedAt": None,
            "currencyCode": cur, "presentmentCurrencyCode": cur, "displayFinancialStatus": status,
            "email": c["email"], "taxesIncluded": o["taxes_included"], "test": False,
            "discountCodes": [o["discount_code"]] if o["discount_code"] else [], "tags": [],
            "sourceName": "web", "confirmed": True,
            "landingPageUrl": v.d["landingPage"] if v else None,
            "referrerUrl": v.d["referrerUrl"] if v else None,
            "customer": CustomerSrc({"c": c, "orders": 0, "spent": 0, "updated": c["created_ts"],
                                     "cur": cur}),
            "totalPriceSet": bag(o["total"], cur), "subtotalPriceSet": bag(o["subtotal"], cur),
            "totalDiscountsSet": bag(o["discount"], cur), "totalShippingPriceSet": bag(o["shipping"], cur),
            "totalTaxSet": bag(o["tax"], cur), "totalRefundedSet": bag(refunded, cur),
            "currentTotalPriceSet": bag(o["total"] - refunded, cur),
            "refunds": [Dict({"id": gid("Refund", r["id"]), "legacyResourceId": str(r["id"]),
                              "createdAt": iso(r["created_ts"]), "note": None,
                              "totalRefundedSet": bag(r["amount"], cur)}) for r in refunds],
            "customerJourneySummary": Dict({
                "ready": True, "daysToConversion": 0 if v else None,
                "customerOrderIndex": None, "firstVisit": v, "lastVisit": v,
                "momentsCount": Dict({"count": 1 if v else 0, "precision": "EXACT"})}),
        }

    def f_lineItems(self, args):
        o, cur = self.o, self.o["currency"]
        rows = [{"id": li["id"], "li": li} for li in o["line_items"]]
        items, cursors, nxt, prev = paginate(rows, args, lambda r: r["id"])
        out = []
        for r in items:
            li = r["li"]
            out.append(Dict({"id": gid("LineItem", li["id"]), "title": li["title"], "name": li["title"],
                             "quantity": li["quantity"], "sku": li["sku"],
                             "variant": Dict({"id": gid("ProductVariant", li["variant_id"]),
                                              "legacyResourceId": str(li["variant_id"]),
                                              "sku": li["sku"], "title": "Default Title"}),
                             "product": Dict({"id": gid("Product", li["product_id"]),
                                              "legacyResourceId": str(li["product_id"]),
                                              "title": li["title"],
                                              "handle": li["title"].lower().replace(" ", "-")}),
                             "originalUnitPriceSet": bag(li["price"], cur),
                             "originalTotalSet": bag(li["price"] * li["quantity"], cur)}))
        return out, cursors, nxt, prev


def shop_gql(shop):
    return {"id": gid("Shop", data.digits(8, "shop", shop)), "name": shop.replace("-", " ").title(),
            "email": f"owner@{shop}.example.com", "myshopifyDomain": f"{shop}.myshopify.com",
            "currencyCode": data.currency_of("shopify", shop), "ianaTimezone": "Etc/UTC",
            "url": f"https://{shop}.myshopify.com",
            "plan": Dict({"displayName": "Basic", "partnerDevelopment": False, "shopifyPlus": False})}


def shop_rest(shop):
    return {"id": int(data.digits(8, "shop", shop)), "name": shop.replace("-", " ").title(),
            "email": f"owner@{shop}.example.com", "domain": f"{shop}.myshopify.com",
            "myshopify_domain": f"{shop}.myshopify.com", "currency": data.currency_of("shopify", shop),
            "iana_timezone": "Etc/UTC", "plan_name": "basic"}


def order_rest(shop, o):
    cur = o["currency"]
    refunds = data.visible_refunds(o)
    a = o["attribution"]
    c = o["customer"]
    return {
        "id": o["id"], "admin_graphql_api_id": gid("Order", o["id"]), "name": f"#{o['number']}",
        "order_number": o["number"], "created_at": iso(o["created_ts"]),
        "processed_at": iso(o["created_ts"]), "updated_at": iso(data.order_updated(o)),
        "currency": cur, "presentment_currency": cur, "financial_status": data.financial_status(o),
        "total_price": money(o["total"]), "subtotal_price": money(o["subtotal"]),
        "total_discounts": money(o["discount"]), "total_tax": money(o["tax"]),
        "taxes_included": o["taxes_included"],
        "total_shipping_price_set": {"shop_money": {"amount": money(o["shipping"]), "currency_code": cur}},
        "discount_codes": [{"code": o["discount_code"], "amount": money(o["discount"]),
                            "type": "percentage"}] if o["discount_code"] else [],
        "email": c["email"], "source_name": "web",
        "landing_site": data.landing_url(f"{shop}.myshopify.com", o["landing_handle"], a)
        .split(".myshopify.com", 1)[1] if a["utm_source"] else "/",
        "referring_site": "" if not a["utm_source"] else f"https://www.{a['utm_source']}.com/",
        "customer": {"id": c["id"], "email": c["email"], "first_name": c["first_name"],
                     "last_name": c["last_name"], "created_at": iso(c["created_ts"])},
        "line_items": [{"id": li["id"], "product_id": li["product_id"], "variant_id": li["variant_id"],
                        "title": li["title"], "sku": li["sku"], "quantity": li["quantity"],
                        "price": money(li["price"])} for li in o["line_items"]],
        "refunds": [{"id": r["id"], "order_id": o["id"], "created_at": iso(r["created_ts"]),
                     "transactions": [{"amount": money(r["amount"]), "kind": "refund",
                                       "status": "success", "currency": cur}],
                     "refund_line_items": [] if r["full"] else [{"line_item_id": r["line_item_id"],
                                                                  "quantity": 1}]}
                    for r in refunds],
    }


def install_link(base, shop, config):
    """The URL Shopify opens on the app when a merchant installs it: hmac over
    the sorted query (the check the app must make)."""
    params = {"shop": f"{shop}.myshopify.com", "timestamp": str(int(CLOCK.now())),
              "host": base64.b64encode(f"{shop}.myshopify.com/admin".encode()).decode()}
    msg = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    params["hmac"] = hmac.new(config["client_secret"].encode(), msg.encode(), hashlib.sha256).hexdigest()
    return urllib.parse.urlencode(params)

