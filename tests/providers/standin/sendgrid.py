"""SendGrid v3 mail send, a drop-in for the look-alikes in tests/integration
(test_auth_recovery.MailServer) and tests/fault (faultlib.FakeMail): POST
/v3/mail/send with the Bearer key, the JSON shape SendGrid checks (400 with
its [{message, field, help}] errors), 202 with X-Message-Id and an empty body,
the mail recorded. Modes: ok, down (503), hang (held until the mode changes,
at most 30 s, then 503). Recipients starting with bounce- get 400."""

import threading
import uuid

from .core import COUNTERS, LOCK, CLOCK, Provider, Reply

ALLOWED = {"personalizations", "from", "reply_to", "subject", "content", "attachments", "template_id",
           "headers", "categories", "custom_args", "send_at", "batch_id", "asm", "ip_pool_name",
           "mail_settings", "tracking_settings", "reply_to_list"}


def sendgrid_errors(body):
    """What SendGrid would refuse in a mail-send body; [] when it is right."""
    errors = []

    def bad(field, message):
        errors.append({"message": message, "field": field, "help": None})

    if not isinstance(body, dict):
        return [{"message": "Bad Request", "field": None, "help": None}]
    for key in sorted(set(body) - ALLOWED):
        bad(key, "unknown field")
    pers = body.get("personalizations")
    if not isinstance(pers, list) or not 1 <= len(pers) <= 1000:
        bad("personalizations", "The personalizations field is required and must have at least one "
            "personalization.")
    else:
        for i, p in enumerate(pers):
            to = p.get("to") if isinstance(p, dict) else None
            if not isinstance(to, list) or not to:
                bad(f"personalizations.{i}.to", "The to array is required.")
                continue
            for j, addr in enumerate(to):
                email = addr.get("email") if isinstance(addr, dict) else None
                if not isinstance(email, str) or "@" not in email:
                    bad(f"personalizations.{i}.to.{j}.email", "Does not contain a valid address.")
    sender = body.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str) or "@" not in sender["email"]:
        bad("from.email", "The from object must be provided for every email send.")
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        if not body.get("template_id"):
            bad("subject", "The subject is required.")
    content = body.get("content")
    if not body.get("template_id"):
        if not isinstance(content, list) or not content:
            bad("content", "Unless a valid template_id is provided, the content parameter is required.")
        else:
            for i, c in enumerate(content):
                if not isinstance(c, dict) or not isinstance(c.get("type"), str) \
                        or not isinstance(c.get("value"), str) or not c["value"]:
                    bad(f"content.{i}", "Content must have a type and a non-empty value.")
            if len(content) > 1 and isinstance(content[0], dict) and content[0].get("type") != "text/plain":
                bad("content.0.type", "If present, text/plain must be first.")
    return errors


class SendGrid(Provider):
    name = "sendgrid"
    defaults = {"api_key": "SG.standin-key"}
    routes = [("POST", r"/v3/mail/send", "send")]

    def setup(self):
        with LOCK:
            self.mode = "ok"
            self.mails, self.rejected, self.attempts = [], [], {}
        self.cond = threading.Condition(LOCK)

    def error(self, status, message, field=None):
        return Reply(status, {"errors": [{"message": message, "field": field, "help": None}]})

    def server_error(self, req, status):
        return self.error(status, "Service Unavailable" if status == 503 else "Internal Server Error")

    def not_found(self, req):
        return self.error(404, "not found")

    def method_not_allowed(self, req, allowed):
        return self.error(405, "method not allowed")

    def send(self, req):
        if req.header("Authorization") != f"Bearer {self.config['api_key']}":
            with LOCK:
                self.rejected.append({"why": "authorization"})
            return self.error(401, "The provided authorization grant is invalid, expired, or revoked")
        if (req.header("Content-Type") or "").split(";")[0].strip() != "application/json":
            with LOCK:
                self.rejected.append({"why": "content-type"})
            return self.error(415, "Content-Type must be application/json")
        body = req.json()
        errors = sendgrid_errors(body)
        if errors:
            with LOCK:
                self.rejected.append({"why": errors, "body": body})
            return Reply(400, {"errors": errors})
        to = body["personalizations"][0]["to"][0]["email"].lower()
        with self.cond:
            self.attempts[to] = self.attempts.get(to, 0) + 1
            self.cond.notify_all()
            mode = self.mode
            if mode == "hang":
                self.cond.wait_for(lambda: self.mode != "hang", timeout=30)
                mode = "down"
        if mode == "down":
            return self.server_error(req, 503)
        if to.startswith("bounce-"):
            return self.error(400, "Does not contain a valid address.", "personalizations.0.to.0.email")
        content = body.get("content") or [{"type": "text/plain", "value": ""}]
        mail = {"to": to, "from": body["from"]["email"], "subject": body.get("subject"),
                "type": content[0]["type"], "text": content[0]["value"], "content": content,
                "personalizations": body["personalizations"], "received_at": CLOCK.now(),
                "message_id": uuid.uuid4().hex,
                # SendGrid ignores it; kept so tests tell a resent copy (same
                # key) from a second mail.
                "idempotency_key": req.header("Idempotency-Key")}
        with self.cond:
            self.mails.append(mail)
            self.cond.notify_all()
        COUNTERS.add("mails", self.name, to)
        COUNTERS.add("mails", self.name)
        return Reply(202, b"", [("X-Message-Id", mail["message_id"])], ctype=None)

    def set_mode(self, mode):
        if mode not in ("ok", "down", "hang"):
            raise Reply(400, {"error": "mode is ok, down or hang"})
        with self.cond:
            self.mode = mode
            self.cond.notify_all()

    def admin(self, req, path):
        if path == "/mail/mode" and req.method == "POST":
            self.set_mode((req.json() or {}).get("mode"))
            return Reply(200, {"mode": self.mode})
        if path == "/mails" and req.method == "DELETE":
            with LOCK:
                self.mails, self.rejected, self.attempts = [], [], {}
            return Reply(200, {"mails": []})
        if path == "/mails" and req.method == "GET":
            with LOCK:
                mails = [m for m in self.mails if not req.q("to") or m["to"] == req.q("to").lower()]
                return Reply(200, {"mode": self.mode, "mails": mails, "attempts": dict(self.attempts),
                                   "rejected": list(self.rejected)})
        raise Reply(404, {"error": "mail admin: GET|DELETE /_admin/mails, POST /_admin/mail/mode"})
