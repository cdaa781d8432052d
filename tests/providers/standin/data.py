"""Deterministic data sets, seeded from provider and account ids.

Every number here is a pure function of (provider, account, day, ...) and of
the stand-in's clock, so a test can compute what it should have received
(`truth_*`) and compare it with what the code under test made of it.

- Ad metrics: per campaign per day from DATA_START to today, 20-200 campaigns
  an account; conversions arrive late (a day's conversions and conversion
  value grow for LATE_DAYS days after it), so a sync with no lookback window
  misses some.
- Orders (Shopify shops, Stripe accounts): a few per day, 1-4 line items,
  returning customers, refunds days later, UTM parameters and click ids that
  name campaigns of the ad accounts of the same stand-in user.
- CRM (HubSpot, GoHighLevel, Klaviyo): contacts moving through lifecycle
  stages over time, engagement events, deals with stages and amounts.
Money is in integer minor units with its currency everywhere in here.
"""

import datetime as dt
import random

from .core import CLOCK, LOCK, det, detf, detfs, digits

DATA_START = dt.date(2024, 12, 1)
CURRENCIES = ("USD", "EUR", "GBP")
# Share of a day's final conversions visible 0, 1, 2, 3 days after it.
LATE = (0.55, 0.8, 0.93, 0.98)
LATE_DAYS = len(LATE)
# Fixed conversion rates into USD, for TripleWhale's blended figures.
TO_USD = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27}

_cache = {}


def cached(key, make):
    with LOCK:
        hit = _cache.get(key)
        if hit is not None and hit[0] == CLOCK.today():
            return hit[1]
    value = make()
    with LOCK:
        _cache[key] = (CLOCK.today(), value)
    return value


def clear_cache():
    with LOCK:
        _cache.clear()


def day_start(day):
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()


def days(since, until):
    d = since
    while d <= until:
        yield d
        d += dt.timedelta(days=1)


def clamp_range(since, until):
    today = CLOCK.today()
    return max(since, DATA_START), min(until, today)


def currency_of(provider, account):
    return CURRENCIES[det("currency", provider, account) % len(CURRENCIES)]


# ---------------------------------------------------------------------------
# Accounts of a stand-in user
# ---------------------------------------------------------------------------

ID_DIGITS = {"google_ads": 10, "meta": 15, "tiktok": 19, "linkedin": 9, "hubspot": 8}
ACCOUNTS_PER_USER = {"google_ads": 2, "meta": 2, "tiktok": 2, "linkedin": 2}


def accounts_of(provider, user):
    """The accounts a user reaches at a provider (ids as the provider writes
    them, without prefixes such as act_ or urn:li:...)."""
    n = ACCOUNTS_PER_USER.get(provider, 1)
    if provider in ID_DIGITS:
        return [digits(ID_DIGITS[provider], "account", provider, user, i) for i in range(n)]
    if provider == "gohighlevel":
        return [alnum(20, "location", user, i) for i in range(2)]
    if provider == "klaviyo":
        return [alnum(6, "klaviyo", user).upper()]
    return [f"{provider}-{user}"]


ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def alnum(n, *parts):
    x = det(*parts) * 2 ** 64 + det("more", *parts)
    out = []
    for _ in range(n):
        x, r = divmod(x, len(ALNUM))
        out.append(ALNUM[r])
    return "".join(out)


# ---------------------------------------------------------------------------
# Campaigns and daily ad metrics
# ---------------------------------------------------------------------------

CHANNELS = {
    "google_ads": [("SEARCH", 35), ("PERFORMANCE_MAX", 20), ("SHOPPING", 15),
                   ("DISPLAY", 10), ("VIDEO", 20)],
    "meta": [("OUTCOME_SALES", 45), ("OUTCOME_TRAFFIC", 20), ("OUTCOME_AWARENESS", 20),
             ("OUTCOME_LEADS", 15)],
    "tiktok": [("CONVERSIONS", 40), ("TRAFFIC", 20), ("VIDEO_VIEWS", 25), ("REACH", 15)],
    "linkedin": [("WEBSITE_CONVERSION", 35), ("WEBSITE_VISIT", 25), ("VIDEO_VIEW", 20),
                 ("LEAD_GENERATION", 20)],
}
VIDEO = {"VIDEO", "OUTCOME_AWARENESS", "VIDEO_VIEWS", "VIDEO_VIEW"}
CAMPAIGN_DIGITS = {"google_ads": 11, "meta": 17, "tiktok": 19, "linkedin": 9}
THEMES = ("Brand", "Spring Sale", "Summer", "Retargeting", "Prospecting", "Black Friday",
          "Holiday", "New Arrivals", "Bestsellers", "Lookalike", "Clearance", "Loyalty")


def pick(weighted, u):
    total = sum(w for _, w in weighted)
    x = u * total
    for v, w in weighted:
        x -= w
        if x < 0:
            return v
    return weighted[-1][0]


def campaign_count(provider, account):
    return 20 + det("ncampaigns", provider, account) % 181


def campaigns(provider, account):
    def make():
        out = []
        span = 730      # campaigns start over two years from DATA_START, whatever today is
        for i in range(campaign_count(provider, account)):
            u = detfs(8, "campaign", provider, account, i)
            channel = pick(CHANNELS[provider], u[0])
            if u[1] < 0.3:      # evergreen: from the start, still running
                start, end = DATA_START + dt.timedelta(days=int(u[2] * 30)), None
            else:
                start = DATA_START + dt.timedelta(days=int(u[2] * max(1, span - 20)))
                end = start + dt.timedelta(days=20 + int(u[3] * 280))
            theme = THEMES[int(u[4] * len(THEMES))]
            out.append({
                "index": i,
                "id": digits(CAMPAIGN_DIGITS[provider], "campaign-id", provider, account, i),
                "name": f"{theme} {channel.replace('_', ' ').title()} #{i + 1}",
                "channel": channel, "start": start, "end": end,
                "video": channel in VIDEO,
                "base": 2000 + int(u[5] * 48000),          # minor units a day
                "cpm": 300 + int(u[6] * 2700),             # minor units per 1000
                "ctr": 0.004 + u[7] * 0.03,
                "cvr": 0.01 + detf("cvr", provider, account, i) * 0.05,
                "aov": 3000 + int(detf("aov", provider, account, i) * 12000),
            })
        return out
    return cached(("campaigns", provider, account), make)


def active(c, day):
    return c["start"] <= day and (c["end"] is None or day <= c["end"])


def status_of(c):
    return "ENABLED" if active(c, CLOCK.today()) else "PAUSED"


def late_share(day, today=None):
    age = ((today or CLOCK.today()) - day).days
    if age < 0:
        return 0.0
    return LATE[age] if age < LATE_DAYS else 1.0


def final_metrics(provider, account):
    """Per campaign index: a list per day since DATA_START of the final
    (spend, impressions, clicks, conversions, conversion value, video views)."""
    def make():
        out = []
        n_days = (CLOCK.today() - DATA_START).days + 1
        for c in campaigns(provider, account):
            rng = random.Random(det("metrics", provider, account, c["index"]))
            r = rng.random
            first = (c["start"] - DATA_START).days
            last = n_days - 1 if c["end"] is None else min(n_days - 1, (c["end"] - DATA_START).days)
            series = [None] * n_days
            base, cpm, ctr, cvr, aov = c["base"], c["cpm"], c["ctr"], c["cvr"], c["aov"]
            for k in range(first, last + 1):
                day = DATA_START + dt.timedelta(days=k)
                season = 1.0 + 0.25 * (day.weekday() >= 5) + 0.6 * (day.month == 11 and day.day >= 20)
                spend = int(base * season * (0.6 + 0.8 * r()))
                impressions = max(1, int(spend * 1000 / cpm))
                clicks = int(impressions * ctr * (0.7 + 0.6 * r()))
                conv = int(clicks * cvr * (0.5 + r()) + r())
                value = int(conv * aov * (0.8 + 0.4 * r()))
                u5 = r()
                views = int(impressions * (0.15 + 0.3 * u5)) if c["video"] else 0
                series[k] = (spend, impressions, clicks, conv, value, views)
            out.append(series)
        return out
    return cached(("final-metrics", provider, account), make)


def metrics(provider, account, c, day, final=False, today=None):
    """One campaign's numbers for one day, as seen now (or final)."""
    today = today or CLOCK.today()
    spend, impressions, clicks, conv_final, value_final, views = \
        final_metrics(provider, account)[c["index"]][(day - DATA_START).days]
    share = 1.0 if final else late_share(day, today)
    conv = int(conv_final * share)
    value = value_final * conv // conv_final if conv_final else 0
    return {"spend": spend, "impressions": impressions, "clicks": clicks,
            "conversions": conv, "conversion_value": value, "video_views": views}


def ad_rows(provider, account, since, until, channel=None, order="date"):
    """(day, campaign) pairs with data in [since, until], by date then
    campaign (or by campaign then date)."""
    since, until = clamp_range(since, until)
    camps = [c for c in campaigns(provider, account)
             if channel is None or c["channel"] in channel]
    if order == "campaign":
        return [(d, c) for c in camps for d in days(since, until) if active(c, d)]
    return [(d, c) for d in days(since, until) for c in camps if active(c, d)]


METRIC_KEYS = ("spend", "impressions", "clicks", "conversions", "conversion_value",
               "video_views")


def truth_ads(provider, account, since, until, final=False, channel=None, by="total"):
    rows, today = {}, CLOCK.today()
    for d, c in ad_rows(provider, account, since, until, channel):
        m = metrics(provider, account, c, d, final, today)
        key = {"total": "total", "day": d.isoformat(), "campaign": c["id"]}[by]
        acc = rows.setdefault(key, dict.fromkeys(METRIC_KEYS, 0) | {"rows": 0})
        for k in METRIC_KEYS:
            acc[k] += m[k]
        acc["rows"] += 1
    return {"provider": provider, "account": account, "currency": currency_of(provider, account),
            "since": since.isoformat(), "until": until.isoformat(), "final": final,
            "money": "minor units", "by": by, "values": rows}


# ---------------------------------------------------------------------------
# Orders with line items, customers who come back, refunds, attribution
# ---------------------------------------------------------------------------

FIRST = ("Ava", "Noah", "Mia", "Liam", "Zoe", "Omar", "Ines", "Hugo", "Lena", "Ravi",
         "Yuki", "Sara", "Finn", "Nora", "Leo", "Ada", "Ivan", "Maya", "Theo", "Rosa")
LAST = ("Smith", "Garcia", "Muller", "Rossi", "Dubois", "Kowalski", "Tanaka", "Okafor",
        "Jensen", "Silva", "Novak", "Brown", "Khan", "Moreau", "Costa", "Berg")
PRODUCTS = ("Linen Shirt", "Wool Beanie", "Trail Sneaker", "Canvas Tote", "Rain Jacket",
            "Merino Socks", "Denim Jacket", "Leather Belt", "Sun Hat", "Yoga Mat",
            "Travel Mug", "Desk Lamp", "Ceramic Vase", "Scented Candle", "Cotton Tee",
            "Hoodie", "Running Shorts", "Water Bottle", "Backpack", "Sunglasses")
# (utm_source, utm_medium, click id parameter, provider whose campaigns it names, weight)
SOURCES = (("google", "cpc", "gclid", "google_ads", 26), ("facebook", "paid", "fbclid", "meta", 22),
           ("tiktok", "paid", "ttclid", "tiktok", 10), ("youtube", "video", "gclid", "google_ads", 4),
           ("linkedin", "paid", "li_fat_id", "linkedin", 3), ("klaviyo", "email", None, None, 12),
           ("google", "organic", None, None, 10), (None, None, None, None, 13))


def products(provider, account):
    out = []
    for i, title in enumerate(PRODUCTS):
        u = detfs(2, "product", provider, account, i)
        out.append({"id": int(digits(13, "product", provider, account, i)),
                    "variant_id": int(digits(14, "variant", provider, account, i)),
                    "title": title, "sku": f"SKU-{i + 1:03d}",
                    "handle": title.lower().replace(" ", "-"),
                    "price": 900 + int(u[0] * 14000) // 100 * 100 - 1})
    return out


def attribution(user, n, day, rng, memo):
    src, medium, click, ad_provider, _ = pick([(s, s[4]) for s in SOURCES], rng.random())
    out = {"utm_source": src, "utm_medium": medium, "utm_campaign": None,
           "utm_content": None, "utm_term": None, "click_id_param": click, "click_id": None,
           "ad_provider": ad_provider, "ad_account": None, "campaign_id": None}
    if ad_provider:
        acct = accounts_of(ad_provider, user)[0]
        key = (ad_provider, day, src == "youtube")
        camps = memo.get(key)
        if camps is None:
            camps = memo[key] = [c for c in campaigns(ad_provider, acct) if active(c, day)
                                 and (src != "youtube" or c["video"])] or campaigns(ad_provider, acct)
        c = camps[rng.randrange(len(camps))]
        out.update(utm_campaign=c["id"], ad_account=acct, campaign_id=c["id"],
                   utm_content=f"ad-{rng.randrange(40) + 1}")
        out["click_id"] = ("Cj0KCQ" if click == "gclid" else "IwAR" if click == "fbclid"
                           else "") + str(rng.randrange(10 ** 15, 10 ** 16))
    elif src == "klaviyo":
        out["utm_campaign"] = f"newsletter-{day.isoformat()[:7]}"
    if medium == "cpc":
        out["utm_term"] = ("linen shirt", "rain jacket", "gift ideas", "sneakers")[n % 4]
    return out


def landing_url(host, handle, attr):
    params = [(k, attr[k]) for k in ("utm_source", "utm_medium", "utm_campaign", "utm_content",
                                     "utm_term") if attr[k]]
    if attr["click_id"]:
        params.append((attr["click_id_param"], attr["click_id"]))
    q = "&".join(f"{k}={str(v).replace(' ', '+')}" for k, v in params)
    return f"https://{host}/products/{handle}" + ("?" + q if q else "")


def orders(provider, account, user=None):
    """All orders from DATA_START to today (future ones of today included;
    `visible_orders` hides what has not happened yet)."""
    user = user or account

    def make():
        cur = currency_of(provider, account)
        catalog = products(provider, account)
        rng = random.Random(det("orders", provider, account, user))
        r = rng.random
        base = 3 + rng.randrange(7)
        idbase = 5_000_000_000_000 + det("ids", provider, account) % 10 ** 12 // 10 ** 5 * 10 ** 5
        out, customers, memo = [], [], {}
        for day in days(DATA_START, CLOCK.today()):
            season = 1.0 + 0.3 * (day.weekday() >= 5) + 1.2 * (day.month == 11 and day.day >= 20)
            n_today = int(base * season * (0.5 + r()))
            times = sorted(int(r() * 86400) for _ in range(n_today))
            for k in range(n_today):
                n = len(out)
                created = day_start(day) + times[k]
                if customers and r() >= 0.62:
                    back = int(r() ** 2 * len(out))
                    cust, returning = out[len(out) - 1 - back]["customer"], True
                else:
                    i = len(customers)
                    first, last = FIRST[rng.randrange(20)], LAST[rng.randrange(16)]
                    cust = {"id": idbase + 7 * 10 ** 11 + i * 13, "first_name": first,
                            "last_name": last, "email": f"{first}.{last}.{i}@example.com".lower(),
                            "created_ts": created}
                    customers.append(cust)
                    returning = False
                lines = []
                for j in range(1 + int(r() ** 2 * 4)):
                    p = catalog[rng.randrange(len(catalog))]
                    qty = 1 + (r() < 0.1)
                    lines.append({"id": idbase + 9 * 10 ** 11 + n * 10 + j,
                                  "product_id": p["id"], "variant_id": p["variant_id"],
                                  "title": p["title"], "sku": p["sku"], "quantity": qty,
                                  "price": p["price"]})
                subtotal = sum(li["price"] * li["quantity"] for li in lines)
                discount = subtotal // 10 if r() < 0.2 else 0
                shipping = 0 if subtotal - discount >= 7500 else 595
                taxes_included = cur != "USD"
                tax = (round((subtotal - discount) * 0.08) if not taxes_included else
                       round((subtotal - discount) - (subtotal - discount) / 1.2))
                total = subtotal - discount + shipping + (0 if taxes_included else tax)
                refunds = []
                if r() < 0.08:
                    full = r() < 0.4
                    amount = total if full else lines[0]["price"]
                    rts = created + 86400 * (1 + int(r() * 20)) + 3600
                    refunds.append({"id": idbase + 8 * 10 ** 11 + n * 7, "created_ts": rts,
                                    "amount": amount, "full": full,
                                    "line_item_id": None if full else lines[0]["id"]})
                attr = attribution(user, n, day, rng, memo)
                out.append({"index": n, "id": idbase + n * 1000 + rng.randrange(1000),
                            "number": 1001 + n, "created_ts": created, "currency": cur,
                            "customer": cust, "returning": returning, "line_items": lines,
                            "subtotal": subtotal, "discount": discount,
                            "discount_code": "WELCOME10" if discount else None,
                            "shipping": shipping, "tax": tax, "taxes_included": taxes_included,
                            "total": total, "refunds": refunds, "attribution": attr,
                            "landing_handle": lines[0]["title"].lower().replace(" ", "-")})
        return out
    return cached(("orders", provider, account, user), make)


def visible_refunds(o, now=None):
    now = CLOCK.now() if now is None else now
    return [r for r in o["refunds"] if r["created_ts"] <= now]


def order_updated(o, now=None):
    rs = visible_refunds(o, now)
    return max([o["created_ts"]] + [r["created_ts"] for r in rs])


def financial_status(o):
    rs = visible_refunds(o)
    if not rs:
        return "paid"
    return "refunded" if any(r["full"] for r in rs) else "partially_refunded"


def visible_orders(provider, account, user=None):
    now = CLOCK.now()
    return [o for o in orders(provider, account, user) if o["created_ts"] <= now]


def truth_orders(provider, account, since, until, user=None):
    """Orders created in [since, until] (UTC days): counts and money per
    currency, refunds visible now, new and returning customers, and orders
    and revenue per utm_source / campaign."""
    lo, hi = day_start(since), day_start(until) + 86400
    out = {"orders": 0, "gross": 0, "refunded": 0, "net": 0, "subtotal": 0, "discounts": 0,
           "shipping": 0, "tax": 0, "line_items": 0, "units": 0, "new_customers": 0,
           "returning_orders": 0, "refunds": 0, "by_source": {}, "by_campaign": {},
           "by_day": {}}
    cur = currency_of(provider, account)
    for o in visible_orders(provider, account, user):
        if not lo <= o["created_ts"] < hi:
            continue
        rs = visible_refunds(o)
        refunded = sum(r["amount"] for r in rs)
        out["orders"] += 1
        out["gross"] += o["total"]
        out["refunded"] += refunded
        out["refunds"] += len(rs)
        out["net"] += o["total"] - refunded
        out["subtotal"] += o["subtotal"]
        out["discounts"] += o["discount"]
        out["shipping"] += o["shipping"]
        out["tax"] += o["tax"]
        out["line_items"] += len(o["line_items"])
        out["units"] += sum(li["quantity"] for li in o["line_items"])
        out["new_customers"] += not o["returning"]
        out["returning_orders"] += o["returning"]
        a = o["attribution"]
        s = out["by_source"].setdefault(f"{a['utm_source'] or '(direct)'}/{a['utm_medium'] or '(none)'}",
                                        {"orders": 0, "gross": 0})
        s["orders"] += 1
        s["gross"] += o["total"]
        if a["campaign_id"]:
            c = out["by_campaign"].setdefault(a["campaign_id"], {"provider": a["ad_provider"],
                                                                  "orders": 0, "gross": 0})
            c["orders"] += 1
            c["gross"] += o["total"]
        day = dt.datetime.fromtimestamp(o["created_ts"], dt.timezone.utc).date().isoformat()
        d = out["by_day"].setdefault(day, {"orders": 0, "gross": 0})
        d["orders"] += 1
        d["gross"] += o["total"]
    return {"provider": provider, "account": account, "currency": cur, "money": "minor units",
            "since": since.isoformat(), "until": until.isoformat(), "values": out}


# ---------------------------------------------------------------------------
# CRM: contacts with lifecycle stages and engagement, deals
# ---------------------------------------------------------------------------

STAGES = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead",
          "opportunity", "customer")
DEAL_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled",
               "decisionmakerboughtin", "contractsent")
CONTACT_SOURCES = (("PAID_SEARCH", 25), ("PAID_SOCIAL", 25), ("EMAIL_MARKETING", 15),
                   ("ORGANIC_SEARCH", 15), ("DIRECT_TRAFFIC", 15), ("REFERRALS", 5))
ENGAGEMENT = ("Received Email", "Opened Email", "Clicked Email", "Viewed Product",
              "Placed Order")


def contacts(provider, account):
    """Contacts with their stage history, engagement events and deals."""
    def make():
        out = []
        rng = random.Random(det("contacts", provider, account))
        r = rng.random
        for day in days(DATA_START, CLOCK.today()):
            for k in range(2 + rng.randrange(6)):
                n = len(out)
                created = day_start(day) + int(r() * 86400)
                first, last = FIRST[rng.randrange(20)], LAST[rng.randrange(16)]
                # Stage history: each step some days after the last.
                history, t, stage = [(created, 0)], created, 0
                top = int(r() ** 1.5 * len(STAGES))
                while stage < min(top, len(STAGES) - 1):
                    t += 86400 * (1 + int(r() * 40))
                    stage += 1
                    history.append((t, stage))
                events, t = [], created
                for e in range(int(r() * 12)):
                    t += 3600 * (1 + int(r() * 24 * 20))
                    kind = ENGAGEMENT[min(4, int(r() ** 1.8 * 5))]
                    events.append({"id": str(10 ** 11 + n * 100 + e), "ts": t, "metric": kind})
                deal = None
                if top >= 4 and r() < 0.7:
                    dstart = history[min(4, len(history) - 1)][0]
                    steps, t = [], dstart
                    for s in range(1 + int(r() * 5)):
                        steps.append((t, DEAL_STAGES[min(s, 4)]))
                        t += 86400 * (2 + int(r() * 15))
                    if r() < 0.75:
                        steps.append((t, "closedwon" if r() < 0.6 else "closedlost"))
                    deal = {"id": str(2 * 10 ** 10 + n * 7), "name": f"{first} {last} - {PRODUCTS[n % 20]}",
                            "amount": 50000 + int(r() * 950000) // 100 * 100,
                            "created_ts": dstart, "history": steps}
                out.append({"index": n, "id": str(10 ** 8 + n * 3),
                            "alt_id": alnum(20, "cid", provider, account, n),
                            "profile_id": "01" + alnum(24, "pid", provider, account, n).upper(),
                            "first_name": first, "last_name": last,
                            "email": f"{first}.{last}.{n}@example.org".lower(),
                            "phone": "+1555" + str(1000000 + n),
                            "created_ts": created, "history": history, "events": events,
                            "source": pick(CONTACT_SOURCES, r()), "deal": deal})
        return out
    return cached(("contacts", provider, account), make)


def as_of(history, now=None):
    """The last (ts, value) of a history that has happened by now."""
    now = CLOCK.now() if now is None else now
    seen = [h for h in history if h[0] <= now]
    return seen[-1] if seen else None


def contact_view(c, now=None):
    """A contact as it is now: stage, engagement counts, last change."""
    now = CLOCK.now() if now is None else now
    ts, stage = as_of(c["history"], now)
    evs = [e for e in c["events"] if e["ts"] <= now]
    counts = {k: sum(1 for e in evs if e["metric"] == k) for k in ENGAGEMENT}
    updated = max([ts] + [e["ts"] for e in evs])
    deal = None
    if c["deal"] and c["deal"]["created_ts"] <= now:
        dts, dstage = as_of(c["deal"]["history"], now)
        updated = max(updated, dts)
        deal = {"stage": dstage, "stage_ts": dts}
    return {"stage": STAGES[stage], "stage_ts": ts, "engagement": counts,
            "last_engagement_ts": evs[-1]["ts"] if evs else None, "updated_ts": updated,
            "deal": deal}


def visible_contacts(provider, account):
    now = CLOCK.now()
    return [c for c in contacts(provider, account) if c["created_ts"] <= now]


def truth_crm(provider, account, since=None, until=None):
    lo = day_start(since) if since else 0
    hi = day_start(until) + 86400 if until else float("inf")
    out = {"contacts": 0, "by_stage": {s: 0 for s in STAGES}, "deals": 0,
           "deals_by_stage": {}, "deal_amount_by_stage": {}, "engagement": {},
           "by_source": {}}
    for c in visible_contacts(provider, account):
        if not lo <= c["created_ts"] < hi:
            continue
        v = contact_view(c)
        out["contacts"] += 1
        out["by_stage"][v["stage"]] += 1
        out["by_source"][c["source"]] = out["by_source"].get(c["source"], 0) + 1
        for k, n in v["engagement"].items():
            out["engagement"][k] = out["engagement"].get(k, 0) + n
        if v["deal"]:
            s = v["deal"]["stage"]
            out["deals"] += 1
            out["deals_by_stage"][s] = out["deals_by_stage"].get(s, 0) + 1
            out["deal_amount_by_stage"][s] = out["deal_amount_by_stage"].get(s, 0) + c["deal"]["amount"]
    return {"provider": provider, "account": account, "currency": currency_of(provider, account),
            "money": "minor units", "values": out}
