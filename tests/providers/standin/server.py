"""The HTTP server: one port where each provider answers under its own path
prefix (/shopify, /stripe, ...), optional extra ports that serve one provider
at their root, and the admin API under /_admin/."""

import http.server
import socket
import threading
import time
import urllib.parse

from . import admin
from .core import COUNTERS, Reply, Request
from .deps import Airbyte, Kong, Metabase, Temporal
from .gohighlevel import GoHighLevel
from .google_ads import GoogleAds, YouTube
from .hubspot import HubSpot
from .klaviyo import Klaviyo
from .linkedin import LinkedIn
from .meta import Meta
from .openai_api import OpenAI
from .sendgrid import SendGrid
from .shopify import Shopify
from .stripe_api import Stripe
from .tiktok import TikTok
from .triplewhale import TripleWhale

# URL prefix -> provider class. Prefixes are the path segment in base URLs.
PROVIDERS = {
    "triplewhale": TripleWhale, "hubspot": HubSpot, "klaviyo": Klaviyo,
    "google-ads": GoogleAds, "meta": Meta, "linkedin": LinkedIn, "tiktok": TikTok,
    "youtube": YouTube, "shopify": Shopify, "stripe": Stripe, "gohighlevel": GoHighLevel,
    "openai": OpenAI, "sendgrid": SendGrid,
    "kong": Kong, "temporal": Temporal, "airbyte": Airbyte, "metabase": Metabase,
}


class App:
    def __init__(self):
        self.providers = {prefix: cls() for prefix, cls in PROVIDERS.items()}
        self.by_name = {p.name: p for p in self.providers.values()}
        self.prefix_of = {p.name: prefix for prefix, p in self.providers.items()}
        self.servers = []
        self.host = "127.0.0.1"
        self.port = None
        self.fixed_ports = {}

    # --- lifecycle ---
    def start(self, host="127.0.0.1", port=0, fixed=None):
        """Listens on host:port (0 picks one) and on `fixed` {prefix: port}."""
        self.host = host
        main = self._listen(host, port, None)
        self.port = main.server_address[1]
        for prefix, p in (fixed or {}).items():
            if prefix not in self.providers:
                raise ValueError(f"unknown provider {prefix}")
            s = self._listen(host, p, prefix)
            self.fixed_ports[prefix] = s.server_address[1]
        return self

    def _listen(self, host, port, fixed):
        app = self

        class Handler(BaseHandler):
            pass
        Handler.app, Handler.fixed = app, fixed
        server = Server((host, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True,
                         name=f"standin-{fixed or 'main'}").start()
        self.servers.append(server)
        return server

    def stop(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()
        self.servers = []

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def base_urls(self):
        out = {prefix: f"{self.url}/{prefix}" for prefix in self.providers}
        for prefix, port in self.fixed_ports.items():
            out[prefix] = f"http://{self.host}:{port}"
        return out

    def reset(self, name=None):
        admin.reset(self, name)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class BaseHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app = None
    fixed = None
    server_version = "standin"
    sys_version = ""

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 - http.server's names
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def dispatch(self):
        parts = urllib.parse.urlsplit(self.path)
        path = parts.path or "/"
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = self.headers.get("Host") or f"{self.app.host}:{self.server.server_address[1]}"
        provider = None
        if self.fixed:
            provider, prefix, sub = self.app.providers[self.fixed], "", path
        elif path == "/_admin" or path.startswith("/_admin/"):
            req = Request(self.command, path[len("/_admin"):] or "/", query, self.headers, body,
                          f"http://{host}", "/_admin")
            try:
                reply = admin.handle(self.app, req)
            except Reply as r:
                reply = r
            return self.send(reply)
        else:
            seg = path.split("/", 2)[1]
            provider = self.app.providers.get(seg)
            prefix = "/" + seg
            sub = path[len(prefix):] or "/"
        if provider is None:
            return self.send(Reply(404, {"error": f"no stand-in at {path}; see /_admin/"}))
        req = Request(self.command, sub, query, self.headers, body, f"http://{host}{prefix}", prefix)
        try:
            reply = provider.handle(req)
        except Reply as r:
            reply = r
        COUNTERS.add("statuses", provider.name, str(reply.status))
        self.send(reply)

    def send(self, reply):
        if reply.close:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.send_response(reply.status)
        for k, v in reply.headers:
            self.send_header(k, v)
        if reply.stream is not None:
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for chunk in reply.stream:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)


def build(host="127.0.0.1", port=0, fixed=None):
    return App().start(host, port, fixed)


def serve_forever(app):
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()
