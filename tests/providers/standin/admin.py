"""The admin API for tests, under /_admin/ (never on a provider's path):
reset, settings and lifetimes, the clock, faults, tokens and keys, counters,
LLM scripts, webhooks, mails, dependency health and ground truth."""

import re
import urllib.error
import urllib.request

from . import data
from .core import (CLOCK, COUNTERS, FAULTS, KEYS, LOCK, RETRY_AFTER, TOKENS, Grant, Reply,
                   parse_day)

RULE_KINDS = ("5xx", "slow", "malformed", "drop")
STATE_KINDS = ("revoked", "expired")

INDEX = {
    "GET /_admin/": "this index: providers and their base URLs",
    "POST /_admin/reset": "{provider?}: tokens, counters, faults, limits, scripts, mails back to start",
    "GET|POST /_admin/config/{provider}": "settings: lifetimes (access_ttl, refresh_ttl, code_ttl), "
                                          "rotate_refresh, refresh_grace_s, limits, client_id/secret",
    "GET|POST /_admin/clock": "{today: YYYY-MM-DD} | {advance_s: N} | {offset_s: N}",
    "GET|POST|DELETE /_admin/faults": "{provider, kind: 5xx|slow|malformed|drop|revoked|expired, "
                                      "count (-1 for ever), match (path part), status, delay_ms, "
                                      "user, key}",
    "GET /_admin/tokens/{provider}": "grants and tokens issued",
    "POST /_admin/tokens/{provider}": "{user, scope?, extra?, access_ttl?}: mint a token pair",
    "POST /_admin/keys": "{provider, key, account?, shops?}: register an API key",
    "GET /_admin/counters": "?provider=: requests per endpoint, statuses, violations, "
                            "retry_after_ignored, refreshes, refresh_reuse, code_reuse, "
                            "idempotency (per key), faults, webhooks_sent, auth_failures",
    "GET|POST|DELETE /_admin/llm/scripts": "scripted chat completion answers",
    "GET /_admin/llm/calls": "every chat completion call (model, idempotency key, usage)",
    "POST /_admin/webhooks/send": "{provider, url, topic?, account?, body?, event_id?, "
                                  "timestamp_offset_s?, tamper?, secret?}",
    "GET /_admin/truth/{provider}": "?account=&since=&until=&final=1&by=total|day|campaign&channel=",
    "GET /_admin/accounts/{provider}": "?user=: the accounts a stand-in user reaches",
    "GET|DELETE /_admin/mails": "mails received by the SendGrid stand-in; POST /_admin/mail/mode {mode}",
    "POST /_admin/deps/{name}": "{state: up|down|slow|drop}",
    "GET /_admin/shopify/install": "?shop=: the hmac-signed install URL query",
}


def provider_of(app, name):
    p = app.providers.get(name) or app.by_name.get(name)
    if p is None:
        raise Reply(404, {"error": f"unknown provider {name!r}",
                          "known": sorted(app.providers)})
    return p


def body_of(req):
    if not req.body:
        return {}
    j = req.json()
    if not isinstance(j, dict):
        raise Reply(400, {"error": "the body must be a JSON object"})
    return j


def reset(app, name=None):
    if name:
        p = provider_of(app, name)
        p.reset()
        TOKENS.reset(p.name)
        FAULTS.reset(p.name)
        with LOCK:
            for per in COUNTERS.c.values():
                per.pop(p.name, None)
        return
    for p in app.providers.values():
        p.reset()
    TOKENS.reset()
    FAULTS.reset()
    COUNTERS.reset()
    KEYS.reset()
    RETRY_AFTER.reset()


def handle(app, req):
    path, m = req.path.rstrip("/") or "/", req.method
    if path == "/" and m == "GET":
        return Reply(200, {"base_urls": app.base_urls(), "admin": INDEX,
                           "clock": clock_state(), "data_start": data.DATA_START.isoformat()})
    if path == "/reset" and m == "POST":
        reset(app, body_of(req).get("provider") or req.q("provider"))
        return Reply(200, {"reset": True})
    if (mm := re.fullmatch(r"/config/([\w-]+)", path)):
        p = provider_of(app, mm.group(1))
        if m == "POST":
            p.configure(body_of(req))
        return Reply(200, {"provider": p.name, "config": p.config})
    if path == "/clock":
        if m == "POST":
            b = body_of(req)
            if "today" in b:
                CLOCK.set_today(parse_day(b["today"]))
            if "advance_s" in b:
                CLOCK.offset += float(b["advance_s"])
            if "offset_s" in b:
                CLOCK.offset = float(b["offset_s"])
        return Reply(200, clock_state())
    if path == "/faults":
        return faults(app, req)
    if (mm := re.fullmatch(r"/tokens/([\w-]+)", path)) and m == "GET":
        return tokens(provider_of(app, mm.group(1)))
    if (mm := re.fullmatch(r"/tokens/([\w-]+)", path)) and m == "POST":
        return mint(provider_of(app, mm.group(1)), body_of(req))
    if path == "/keys" and m == "POST":
        b = body_of(req)
        p = provider_of(app, b.get("provider", ""))
        if not b.get("key"):
            raise Reply(400, {"error": "key is required"})
        KEYS.register(p.name, b["key"], {k: v for k, v in b.items() if k not in ("provider", "key")})
        return Reply(200, {"registered": True})
    if path == "/counters" and m == "GET":
        name = req.q("provider")
        return Reply(200, COUNTERS.snapshot(provider_of(app, name).name if name else None))
    if path.startswith("/llm/"):
        return app.providers["openai"].admin(req, path[len("/llm"):])
    if path == "/webhooks/send" and m == "POST":
        return send_webhook(app, body_of(req))
    if (mm := re.fullmatch(r"/truth/([\w-]+)", path)) and m == "GET":
        return provider_of(app, mm.group(1)).truth(req)
    if (mm := re.fullmatch(r"/accounts/([\w-]+)", path)) and m == "GET":
        p = provider_of(app, mm.group(1))
        user = req.q("user", "demo")
        return Reply(200, {"provider": p.name, "user": user, "accounts": p.accounts_view(user)})
    if path in ("/mails", "/mail/mode"):
        return app.providers["sendgrid"].admin(req, path)
    if (mm := re.fullmatch(r"/deps/([\w-]+)", path)) and m == "POST":
        p = provider_of(app, mm.group(1))
        p.set_state(body_of(req).get("state", "up"))
        return Reply(200, {"provider": p.name, "state": p.state})
    if path == "/shopify/install" and m == "GET":
        from .shopify import install_link
        p = app.providers["shopify"]
        return Reply(200, {"query": install_link(req.base_url, req.q("shop", "demo"), p.config)})
    raise Reply(404, {"error": f"no admin route {m} {req.path}", "admin": INDEX})


def clock_state():
    return {"now": CLOCK.now(), "today": CLOCK.today().isoformat(), "offset_s": CLOCK.offset}


def faults(app, req):
    if req.method == "GET":
        return Reply(200, FAULTS.list())
    if req.method == "DELETE":
        name = req.q("provider")
        FAULTS.reset(provider_of(app, name).name if name else None)
        return Reply(200, FAULTS.list())
    b = body_of(req)
    p = provider_of(app, b.get("provider", ""))
    kind = b.get("kind")
    if kind == "429":
        kind, b["status"] = "5xx", 429
    if kind in RULE_KINDS:
        rule = {"kind": kind, "count": int(b.get("count", 1))}
        for k in ("match", "status", "delay_ms"):
            if k in b:
                rule[k] = b[k]
        FAULTS.add(p.name, rule)
        return Reply(200, {"added": rule, "faults": FAULTS.list()})
    if kind == "revoked":
        if b.get("key") or p.uses_keys:
            KEYS.revoke(p.name, b.get("key"))
        n = TOKENS.revoke_all(p.name, b.get("user"))
        return Reply(200, {"revoked_grants": n})
    if kind == "expired":
        n = TOKENS.expire_all(p.name, b.get("user"), b.get("token_kind", "access"))
        return Reply(200, {"expired_tokens": n})
    raise Reply(400, {"error": f"kind must be one of {RULE_KINDS + STATE_KINDS}"})


def tokens(p):
    with LOCK:
        out = []
        for t in TOKENS.tokens.values():
            if t.provider != p.name:
                continue
            out.append({"kind": t.kind, "value": t.value, "user": t.grant.user,
                        "client_id": t.grant.client_id, "scope": t.grant.scope,
                        "grant": t.grant.id, "extra": t.grant.extra,
                        "expires_in": t.expires_in(), "revoked": t.revoked or t.grant.revoked,
                        "rotated": t.rotated_at is not None})
    return Reply(200, {"provider": p.name, "tokens": out})


def mint(p, b):
    """A token pair for a user without the browser dance (for tests of
    other things than the flow itself)."""
    grant = Grant(p.name, p.config["client_id"], b.get("user", "demo"), b.get("scope", ""), b.get("extra"))
    a, r = TOKENS.issue(grant, b.get("access_ttl", p.config["access_ttl"]), p.config["refresh_ttl"],
                        b.get("refresh", True))
    return Reply(200, {"access_token": a.value, "refresh_token": r.value if r else None,
                       "expires_in": a.expires_in()})


def send_webhook(app, spec):
    p = provider_of(app, spec.get("provider", ""))
    url = spec.get("url")
    if not url or not re.match(r"https?://(127\.\d+\.\d+\.\d+|localhost|\[::1\])[:/]", url):
        raise Reply(400, {"error": "url must be an http URL on this machine (loopback)"})
    if not hasattr(p, "webhook"):
        raise Reply(400, {"error": f"{p.name} sends no webhooks"})
    body, headers = p.webhook(spec)
    if spec.get("tamper"):
        body = body[:-2] + (b" }" if body[-2:] != b" }" else b"}}")
    COUNTERS.add("webhooks_sent", p.name)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=float(spec.get("timeout_s", 10))) as r:
            status, answer = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, answer = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return Reply(200, {"status": None, "error": str(e), "headers": headers,
                           "body": body.decode("utf-8", "replace")})
    return Reply(200, {"status": status, "response": answer.decode("utf-8", "replace"),
                       "headers": headers, "body": body.decode("utf-8", "replace")})


def day_range(req):
    today = CLOCK.today()
    since = parse_day(req.q("since")) if req.q("since") else data.DATA_START
    until = parse_day(req.q("until")) if req.q("until") else today
    if until < since:
        raise Reply(400, {"error": "until is before since"})
    return since, until

