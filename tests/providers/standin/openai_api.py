"""An OpenAI-compatible chat completions API: deterministic scripted answers
(text or tool calls, chosen by the number of assistant turns already in the
conversation, so a retried call gets the same answer), usage counts,
streaming (SSE), 429 and 5xx injection, and counts of calls and of billed
completions per Idempotency-Key."""

import json
import math
import threading

from .core import CLOCK, COUNTERS, LOCK, RETRY_AFTER, Provider, Reply, Sliding, digest


def tokens_of(value):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return max(1, math.ceil(len(text) / 4))


def text_of(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class OpenAI(Provider):
    name = "openai"
    defaults = {"api_keys": [], "key_prefix": "sk-", "requests_per_minute": 0,
                "models": ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "standin-1"]}
    routes = [
        ("POST", r"/v1/chat/completions", "completions"),
        ("GET", r"/v1/models", "models"),
    ]

    def setup(self):
        with LOCK:
            self.scripts = []
            self.calls = []
        self.limiter = Sliding(self.config["requests_per_minute"] or 1, 60.0)
        self.lock = threading.Lock()

    def error(self, status, message, etype, code=None, param=None, headers=()):
        return Reply(status, {"error": {"message": message, "type": etype, "param": param, "code": code}},
                     list(headers))

    def server_error(self, req, status):
        if status == 429:
            return self.error(429, "Rate limit reached for requests. Please try again in 1s.", "requests",
                              "rate_limit_exceeded", headers=[("retry-after", "1"),
                                                              ("x-ratelimit-limit-requests", "500"),
                                                              ("x-ratelimit-remaining-requests", "0"),
                                                              ("x-ratelimit-reset-requests", "1s")])
        return self.error(status, "The server had an error while processing your request. Sorry about that!",
                          "server_error")

    def not_found(self, req):
        return self.error(404, f"Invalid URL ({req.method} {req.path})", "invalid_request_error")

    def auth(self, req):
        key = req.bearer() or ""
        keys = self.config["api_keys"]
        if (keys and key not in keys) or (not keys and not key.startswith(self.config["key_prefix"])):
            COUNTERS.add("auth_failures", self.name, "invalid")
            raise self.error(401, f"Incorrect API key provided: {key[:3]}***{key[-4:]}. You can find your "
                             "API key at https://platform.openai.com/account/api-keys.",
                             "invalid_request_error", "invalid_api_key")
        if self.config["requests_per_minute"]:
            RETRY_AFTER.check(self.name, key[:8])
            ok, _rem, reset = self.limiter.hit(key)
            if not ok:
                self.rate_limited(key[:8], reset)
                raise self.server_error(req, 429)

    def models(self, req):
        self.auth(req)
        return Reply(200, {"object": "list", "data": [{"id": m, "object": "model", "created": 1700000000,
                                                       "owned_by": "standin"} for m in self.config["models"]]})

    # --- scripts ---
    def pick(self, body):
        msgs = body["messages"]
        users = " ".join(text_of(m.get("content")) for m in msgs if m.get("role") == "user")
        system = " ".join(text_of(m.get("content")) for m in msgs if m.get("role") in ("system", "developer"))
        turn = sum(1 for m in msgs if m.get("role") == "assistant")
        with LOCK:
            for s in self.scripts:
                match = s.get("match", {})
                if match.get("contains") and match["contains"] not in users:
                    continue
                if match.get("system_contains") and match["system_contains"] not in system:
                    continue
                if match.get("model") and match["model"] != body.get("model"):
                    continue
                turns = s.get("turns") or [{"content": ""}]
                return s, turn, turns[min(turn, len(turns) - 1)]
        last = next((text_of(m.get("content")) for m in reversed(msgs) if m.get("role") == "user"), "")
        return None, turn, {"content": f"Stand-in answer to: {last[:200]}"}

    def completions(self, req):
        self.auth(req)
        body = req.json()
        if not isinstance(body, dict):
            return self.error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        if not body.get("model"):
            return self.error(400, "you must provide a model parameter", "invalid_request_error", param="model")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) and m.get("role") for m in msgs):
            return self.error(400, "'messages' must be a non-empty array of messages with a role",
                              "invalid_request_error", param="messages")
        tools = body.get("tools") or []
        names = {t.get("function", {}).get("name") for t in tools if isinstance(t, dict)}
        script, turn, answer = self.pick(body)
        key = req.header("Idempotency-Key")
        if answer.get("error"):
            e = answer["error"]
            self.log(body, key, script, turn, e.get("status", 500), None)
            if e.get("status", 500) == 429:
                return self.server_error(req, 429)
            return self.error(e.get("status", 500), e.get("message", "scripted failure"),
                              e.get("type", "server_error"))
        calls = []
        for i, call in enumerate(answer.get("tool_calls") or []):
            if call["name"] not in names:
                return self.error(400, f"scripted tool {call['name']!r} is not among the request's tools "
                                  f"{sorted(n for n in names if n)}", "invalid_request_error", param="tools")
            args = call.get("arguments", {})
            calls.append({"id": "call_" + digest(script and script.get("name"), turn, i).hex()[:24],
                          "type": "function", "function": {"name": call["name"], "arguments":
                                                           args if isinstance(args, str) else json.dumps(args)}})
        content = answer.get("content") if not calls else answer.get("content")
        prompt = sum(tokens_of(text_of(m.get("content")) or m.get("tool_calls") or "") + 4 for m in msgs)
        if tools:
            prompt += tokens_of(tools)
        completion = (tokens_of(content) if content else 0) + sum(tokens_of(c["function"]) for c in calls)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
        cid = "chatcmpl-" + digest(json.dumps(msgs, sort_keys=True), body["model"]).hex()[:29]
        finish = "tool_calls" if calls else "stop"
        message = {"role": "assistant", "content": content if content else None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        self.log(body, key, script, turn, 200, usage)
        if key:
            COUNTERS.add("billed", self.name, key)
        COUNTERS.add("billed", self.name)
        COUNTERS.add("usage", self.name, "prompt_tokens", prompt)
        COUNTERS.add("usage", self.name, "completion_tokens", completion)
        created = int(CLOCK.now())
        headers = [("x-request-id", "req_" + cid[9:]), ("openai-processing-ms", "1")]
        if body.get("stream"):
            return self.stream(cid, created, body, message, finish, usage, headers)
        return Reply(200, {"id": cid, "object": "chat.completion", "created": created, "model": body["model"],
                           "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                           "usage": usage, "system_fingerprint": "fp_standin"}, headers)

    def stream(self, cid, created, body, message, finish, usage, headers):
        def chunk(delta, finish_reason=None, with_usage=None):
            c = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": body["model"],
                 "system_fingerprint": "fp_standin",
                 "choices": [] if with_usage else [{"index": 0, "delta": delta, "logprobs": None,
                                                    "finish_reason": finish_reason}]}
            if with_usage:
                c["usage"] = with_usage
            elif (body.get("stream_options") or {}).get("include_usage"):
                c["usage"] = None
            return b"data: " + json.dumps(c).encode() + b"\n\n"

        def gen():
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            text = message.get("content") or ""
            for i in range(0, len(text), 16):
                yield chunk({"content": text[i:i + 16]})
            for i, call in enumerate(message.get("tool_calls") or []):
                yield chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                             "function": {"name": call["function"]["name"], "arguments": ""}}]})
                args = call["function"]["arguments"]
                for j in range(0, len(args), 16):
                    yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j:j + 16]}}]})
            yield chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield chunk(None, with_usage=usage)
            yield b"data: [DONE]\n\n"
        r = Reply(200, b"", headers + [("Content-Type", "text/event-stream; charset=utf-8"),
                                       ("Cache-Control", "no-cache")], ctype=None)
        r.stream = gen()
        return r

    def log(self, body, key, script, turn, status, usage):
        with LOCK:
            self.calls.append({"ts": CLOCK.now(), "model": body.get("model"), "idempotency_key": key,
                               "script": script.get("name") if script else None, "turn": turn,
                               "status": status, "usage": usage, "stream": bool(body.get("stream"))})

    # --- admin ---
    def admin(self, req, path):
        if path == "/scripts":
            if req.method == "POST":
                b = req.json()
                items = b if isinstance(b, list) else [b]
                for s in items:
                    if not isinstance(s, dict) or not isinstance(s.get("turns"), list):
                        raise Reply(400, {"error": "a script is {name, match: {contains?, system_contains?, "
                                                   "model?}, turns: [{content} | {tool_calls: [{name, "
                                                   "arguments}]} | {error: {status}}]}"})
                with LOCK:
                    self.scripts = [s for s in self.scripts if s.get("name") not in {i.get("name") for i in items}]
                    self.scripts[:0] = items
            elif req.method == "DELETE":
                with LOCK:
                    self.scripts = []
            with LOCK:
                return Reply(200, {"scripts": list(self.scripts)})
        if path == "/calls" and req.method == "GET":
            with LOCK:
                calls = list(self.calls)
            key = req.q("idempotency_key")
            if key:
                calls = [c for c in calls if c["idempotency_key"] == key]
            return Reply(200, {"calls": calls, "count": len(calls),
                               "billed": COUNTERS.get("billed", self.name, key or "total")})
        raise Reply(404, {"error": "llm admin: /scripts (GET, POST, DELETE), /calls (GET)"})


