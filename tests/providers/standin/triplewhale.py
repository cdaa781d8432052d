"""TripleWhale: x-api-key; key check (users/api-keys/me); the summary page
by date range with the period before it, blended from the shop's orders (the
Shopify stand-in's data set of the same shop) and the ad spend of the shop's
ad accounts (the accounts of the stand-in user named like the shop)."""

import datetime as dt

from . import data
from .core import COUNTERS, KEYS, RETRY_AFTER, Provider, Reply, Sliding, parse_day

KEY_PATTERN = r"[A-Za-z0-9_-]{20,}"
AD_SOURCES = (("googleAds", "Google Ads", "google_ads"), ("facebookAds", "Meta Ads", "meta"),
              ("tiktokAds", "TikTok Ads", "tiktok"))


def shop_of(domain):
    return (domain or "").replace(".myshopify.com", "")


def blended(shop, since, until):
    """The summary figures in the shop's currency (major units, 2 decimals)."""
    cur = data.currency_of("shopify", shop)
    o = data.truth_orders("shopify", shop, since, until)["values"]
    out = {"sales": o["gross"] / 100, "orders": o["orders"], "totalRefunds": o["refunded"] / 100,
           "netSales": o["net"] / 100, "newCustomers": o["new_customers"],
           "aov": round(o["gross"] / 100 / o["orders"], 2) if o["orders"] else 0}
    spend_total = 0.0
    for key, _title, provider in AD_SOURCES:
        acct = data.accounts_of(provider, shop)[0]
        t = data.truth_ads(provider, acct, since, until)["values"].get("total", {"spend": 0})
        rate = data.TO_USD[data.currency_of(provider, acct)] / data.TO_USD[cur]
        out[key] = round(t["spend"] / 100 * rate, 2)
        spend_total += t["spend"] / 100 * rate
    out["blendedAds"] = round(spend_total, 2)
    out["roas"] = round(out["sales"] / spend_total, 4) if spend_total else 0
    out["sales"] = round(out["sales"], 2)
    out["totalRefunds"] = round(out["totalRefunds"], 2)
    out["netSales"] = round(out["netSales"], 2)
    return cur, out


TITLES = {"sales": ("Order Revenue", "currency"), "orders": ("Orders", "decimal"),
          "aov": ("Average Order Value", "currency"), "totalRefunds": ("Returns", "currency"),
          "netSales": ("Net Sales", "currency"), "newCustomers": ("New Customers", "decimal"),
          "blendedAds": ("Blended Ad Spend", "currency"), "roas": ("Blended ROAS", "decimal"),
          "googleAds": ("Google Ads Spend", "currency"), "facebookAds": ("Meta Ads Spend", "currency"),
          "tiktokAds": ("TikTok Ads Spend", "currency")}


class TripleWhale(Provider):
    name = "triplewhale"
    uses_keys = True
    defaults = {"requests_per_minute": 60}
    routes = [
        ("GET", r"/api/v2/users/api-keys/me", "me"),
        ("POST", r"/api/v2/summary-page/get-data", "summary"),
    ]

    def setup(self):
        self.limiter = Sliding(self.config["requests_per_minute"], 60.0)

    def server_error(self, req, status):
        return Reply(status, {"code": status, "message": "Internal Server Error"})

    def not_found(self, req):
        return Reply(404, {"code": 404, "message": "Not Found"})

    def auth(self, req):
        key = req.header("x-api-key") or ""
        info, why = KEYS.lookup(self.name, key, KEY_PATTERN)
        if why:
            COUNTERS.add("auth_failures", self.name, why)
            raise Reply(401, {"code": 401, "message": "Unauthorized: invalid or missing API key"})
        RETRY_AFTER.check(self.name, key[:12])
        ok, _rem, reset = self.limiter.hit(key)
        if not ok:
            self.rate_limited(key[:12], reset)
            raise Reply(429, {"code": 429, "message": "Too Many Requests"},
                        [("Retry-After", str(int(reset) + 1))])
        return key, info

    def me(self, req):
        key, info = self.auth(req)
        return Reply(200, {"id": data.alnum(12, "twkey", key), "name": "Omnify",
                           "shops": info.get("shops", ["*"]),
                           "scopes": ["summary-page:read", "pixel-attribution:read"]})

    def summary(self, req):
        key, info = self.auth(req)
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("period"), dict):
            return Reply(400, {"code": 400, "message": "shopDomain and period {start, end} are required"})
        shop = shop_of(body.get("shopDomain"))
        if not shop:
            return Reply(400, {"code": 400, "message": "shopDomain is required"})
        if info.get("shops") and body["shopDomain"] not in info["shops"]:
            return Reply(403, {"code": 403, "message": "This API key has no access to the shop"})
        try:
            since, until = parse_day(body["period"]["start"][:10]), parse_day(body["period"]["end"][:10])
        except (KeyError, ValueError, TypeError):
            return Reply(400, {"code": 400, "message": "period.start and period.end must be YYYY-MM-DD"})
        if until < since:
            return Reply(400, {"code": 400, "message": "period.end is before period.start"})
        span = (until - since).days + 1
        cur, now = blended(shop, since, until)
        _, before = blended(shop, since - dt.timedelta(days=span), since - dt.timedelta(days=1))
        metrics = []
        for mid, (title, kind) in TITLES.items():
            c, p = now[mid], before[mid]
            metrics.append({"id": mid, "metricId": mid, "title": title, "type": kind,
                            "currency": cur if kind == "currency" else None,
                            "values": {"current": c, "previous": p},
                            "delta": round((c - p) / p * 100, 2) if p else None})
        return Reply(200, {"metrics": metrics, "currency": cur,
                           "period": {"start": since.isoformat(), "end": until.isoformat()}})

    def truth(self, req):
        shop = shop_of(req.q("account") or req.q("shop"))
        if not shop:
            raise Reply(400, {"error": "account (the shop, e.g. acme.myshopify.com) is required"})
        since, until = parse_day(req.q("since")), parse_day(req.q("until"))
        cur, figures = blended(shop, since, until)
        return Reply(200, {"provider": self.name, "shop": shop, "currency": cur, "money": "major units",
                           "to_usd": data.TO_USD, "values": figures})
