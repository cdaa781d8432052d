"""Each webhook signed exactly as the provider signs it, checked here
independently of the stand-in's own code, and a tampered one failing."""

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from standin.client import http_call


@pytest.fixture
def receiver():
    got = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    srv.shutdown()
    srv.server_close()


def send(st, receiver, provider, **spec):
    url, got = receiver
    out = st.webhook(provider=provider, url=url, **spec)
    assert out["status"] == 200, out
    return got[-1]


def secret(st, prefix, key):
    return st.admin("GET", f"/config/{prefix}")["config"][key].encode()


def test_shopify_hmac_base64(st, receiver):
    h, body = send(st, receiver, "shopify", account="acme", topic="orders/create")
    want = base64.b64encode(hmac.new(secret(st, "shopify", "client_secret"), body, hashlib.sha256).digest()).decode()
    assert h["x-shopify-hmac-sha256"] == want and h["x-shopify-shop-domain"] == "acme.myshopify.com"
    assert json.loads(body)["line_items"]
    h, body = send(st, receiver, "shopify", account="acme", tamper=True)
    assert h["x-shopify-hmac-sha256"] != base64.b64encode(
        hmac.new(secret(st, "shopify", "client_secret"), body, hashlib.sha256).digest()).decode()


def test_stripe_signature_t_v1(st, receiver):
    acct = "acct_" + "A" * 16
    h, body = send(st, receiver, "stripe", account=acct, topic="charge.succeeded", timestamp_offset_s=-400)
    parts = dict(p.split("=", 1) for p in h["stripe-signature"].split(","))
    want = hmac.new(secret(st, "stripe", "webhook_secret"), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert parts["v1"] == want
    now = st.admin("GET", "/clock")["now"]
    assert now - int(parts["t"]) > 300     # stale: a receiver with 300 s tolerance refuses it
    assert json.loads(body)["type"] == "charge.succeeded"


def test_hubspot_v3(st, receiver):
    url, _ = receiver
    h, body = send(st, receiver, "hubspot")
    msg = b"POST" + url.encode() + body + h["x-hubspot-request-timestamp"].encode()
    want = base64.b64encode(hmac.new(secret(st, "hubspot", "client_secret"), msg, hashlib.sha256).digest()).decode()
    assert h["x-hubspot-signature-v3"] == want


def test_meta_and_klaviyo(st, receiver):
    h, body = send(st, receiver, "meta")
    assert h["x-hub-signature-256"] == "sha256=" + hmac.new(secret(st, "meta", "client_secret"), body,
                                                            hashlib.sha256).hexdigest()
    h, body = send(st, receiver, "klaviyo")
    want = hmac.new(secret(st, "klaviyo", "webhook_secret"), body + h["klaviyo-timestamp"].encode(),
                    hashlib.sha256).hexdigest()
    assert h["klaviyo-signature"] == want
    assert json.loads(body)["meta"]["klaviyo_webhook_id"] == h["klaviyo-webhook-id"]


def test_gohighlevel_ed25519(st, receiver):
    ed = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization
    h, body = send(st, receiver, "gohighlevel")
    status, _, pem = http_call("GET", st.base("gohighlevel") + "/webhooks/public-key")
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ed.Ed25519PublicKey)
    key.verify(base64.b64decode(h["x-ghl-signature"]), body)    # raises when wrong
    with pytest.raises(Exception):
        key.verify(base64.b64decode(h["x-ghl-signature"]), body + b" ")


def test_only_loopback_targets(st):
    with pytest.raises(AssertionError):
        st.webhook(provider="stripe", url="http://10.0.0.1/hook", account="acct_x")
