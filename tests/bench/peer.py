"""The Python peer of benchmark (c): the edge's async publish path written the
way the earlier system was built (FastAPI + Pydantic on uvicorn, aiokafka).

POST /api/auth/signup validates the same JSON as schemas/auth.json
(email: string, email format, at most 254; password: 8..128; name: 1..100;
no other fields), builds the same message the edge sends (msgpack map value;
id, type, schema-version, created-at, correlation-id and traceparent
headers; keyed by id), produces it to <prefix>auth.commands with acks=all
(idempotent producer, linger 1 ms as the edge's default) and answers
202 Accepted with a Location only after the broker acknowledged it.
GET /health answers {"status":"ok"}.

Run by tests/bench/run from its virtualenv:
  PEER_TOPIC_PREFIX=bench. python -m uvicorn peer:app --port 18090
"""

import os
import secrets
import time
from contextlib import asynccontextmanager

import msgpack
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field

BROKERS = os.environ.get("PEER_KAFKA_BROKERS", "127.0.0.1:9092")
TOPIC = os.environ.get("PEER_TOPIC_PREFIX", "omnify.") + "auth.commands"
LINGER_MS = int(os.environ.get("PEER_KAFKA_LINGER_MS", "1"))

producer = None


def uuid7() -> str:
    """A UUIDv7 (RFC 9562) in canonical text form, as the edge makes."""
    ms = time.time_ns() // 1_000_000
    rand = secrets.randbits(74)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (rand >> 62) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class Signup(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    email: EmailStr = Field(max_length=254)
    password: str = Field(min_length=8, max_length=128)
    name: str = Field(min_length=1, max_length=100)


@asynccontextmanager
async def lifespan(app):
    global producer
    producer = AIOKafkaProducer(bootstrap_servers=BROKERS, acks="all",
                                enable_idempotence=True, linger_ms=LINGER_MS)
    await producer.start()
    try:
        yield
    finally:
        await producer.stop()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/api/auth/signup", status_code=202)
async def signup(body: Signup, response: Response):
    mid = uuid7()
    headers = [
        ("id", mid.encode()),
        ("type", b"auth.signup"),
        ("schema-version", b"1"),
        ("created-at", str(time.time_ns() // 1_000_000).encode()),
        ("correlation-id", mid.encode()),
        ("traceparent", traceparent().encode()),
    ]
    value = msgpack.packb(body.model_dump())
    await producer.send_and_wait(TOPIC, value=value, key=mid.encode(), headers=headers)
    response.headers["Location"] = f"/api/operations/{mid}"
    return {"operation_id": mid, "status": "accepted"}
