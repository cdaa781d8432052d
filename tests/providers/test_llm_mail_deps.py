"""The OpenAI-compatible API, the SendGrid drop-in, and the dependency
health endpoints."""

import json

from standin.client import MailServer, http_call, jbody

KEY = {"Authorization": "Bearer sk-test-standin"}
TOOLS = [{"type": "function", "function": {"name": "metrics", "parameters": {"type": "object"}}}]


def chat(st, messages, key=None, **extra):
    h = dict(KEY)
    if key:
        h["Idempotency-Key"] = key
    return st.call("POST", st.base("openai") + "/v1/chat/completions",
                   body=dict({"model": "gpt-4o-mini", "messages": messages}, **extra), headers=h)


def test_scripted_tool_call_then_answer_and_billing_per_key(st):
    st.admin("POST", "/llm/scripts", {"name": "roas", "match": {"contains": "ROAS"}, "turns": [
        {"tool_calls": [{"name": "metrics", "arguments": {"metric": "roas"}}]},
        {"content": "ROAS was 3.2 last week."}]})
    msgs = [{"role": "user", "content": "What was ROAS?"}]
    s, _, raw = chat(st, msgs, "k1", tools=TOOLS)
    out = jbody(raw)
    assert s == 200 and out["choices"][0]["finish_reason"] == "tool_calls"
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"metric": "roas"} and out["usage"]["total_tokens"] > 0
    again = jbody(chat(st, msgs, "k1", tools=TOOLS)[2])          # a retry: the same answer
    assert again["choices"][0]["message"]["tool_calls"][0]["id"] == call["id"]
    msgs += [out["choices"][0]["message"], {"role": "tool", "tool_call_id": call["id"], "content": "3.2"}]
    s, _, raw = chat(st, msgs, "k2", tools=TOOLS)
    assert jbody(raw)["choices"][0]["message"]["content"] == "ROAS was 3.2 last week."
    c = st.counters("openai")
    assert c["idempotency"] == {"k1": 2, "k2": 1} and c["billed"]["k1"] == 2 and c["billed"]["total"] == 3


def test_429_and_5xx_injection_and_bad_key(st):
    st.fault("openai", "429", count=1)
    st.fault("openai", "5xx", status=502, count=1)
    s, h, raw = chat(st, [{"role": "user", "content": "hi"}], "k3")
    assert s == 429 and jbody(raw)["error"]["code"] == "rate_limit_exceeded" and h["retry-after"] == "1"
    assert chat(st, [{"role": "user", "content": "hi"}], "k3")[0] == 502
    assert chat(st, [{"role": "user", "content": "hi"}], "k3")[0] == 200
    c = st.counters("openai")
    assert c["idempotency"]["k3"] == 3 and c["billed"]["k3"] == 1
    s, _, raw = st.call("POST", st.base("openai") + "/v1/chat/completions", body={"model": "m", "messages": []},
                        headers={"Authorization": "Bearer nope"})
    assert s == 401 and jbody(raw)["error"]["code"] == "invalid_api_key"


def test_streaming_with_usage(st):
    s, h, raw = chat(st, [{"role": "user", "content": "stream me"}], stream=True,
                     stream_options={"include_usage": True})
    assert s == 200 and h["content-type"].startswith("text/event-stream")
    events = [e[6:] for e in raw.decode().split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Stand-in answer to: stream me" and chunks[-1]["usage"]["total_tokens"] > 0


def test_sendgrid_drop_in():
    mail = MailServer(api_key="SG.k").start()
    try:
        body = {"personalizations": [{"to": [{"email": "A@x.test"}]}], "from": {"email": "n@o.test"},
                "subject": "Hi", "content": [{"type": "text/plain", "value": "link ?token=abc"}]}
        s, h, _ = http_call("POST", mail.url + "/v3/mail/send", body=body, headers={"Authorization": "Bearer SG.k"})
        assert s == 202 and h["x-message-id"]
        assert mail.wait_mail("a@x.test")[0]["text"] == "link ?token=abc"
        s, _, raw = http_call("POST", mail.url + "/v3/mail/send", body={"from": {}},
                              headers={"Authorization": "Bearer SG.k"})
        assert s == 400 and jbody(raw)["errors"] and mail.rejected
        mail.set_mode("down")
        assert http_call("POST", mail.url + "/v3/mail/send", body=body,
                         headers={"Authorization": "Bearer SG.k"})[0] == 503
        assert mail.attempts_to("a@x.test") == 2 and len(mail.mails) == 1
    finally:
        mail.stop()


def test_dependency_health(st):
    for prefix, path, want in (("kong", "/status", "database"), ("temporal", "/api/v1/cluster-info", "serverVersion"),
                               ("airbyte", "/api/v1/health", "available"), ("metabase", "/api/health", "status")):
        s, _, raw = st.call("GET", st.base(prefix) + path)
        assert s == 200 and want in jbody(raw)
        st.admin("POST", f"/deps/{prefix}", {"state": "down"})
        assert st.call("GET", st.base(prefix) + path)[0] == 503
        st.admin("POST", f"/deps/{prefix}", {"state": "up"})
