"""A webhook receiver for the delivery tests, served by uvicorn in its own process (so a test can SIGKILL it).

Every request is checked against the destination's secret and written, with the status about to be
answered, as one JSON line to RECEIVER_LOG (one write(2) on an O_APPEND file: it survives a SIGKILL of this
process) before the answer goes out. RECEIVER_CHAOS (0..1) is the share of requests answered badly, at
random: 500, 429 with Retry-After: 1, or a hang past the sender's timeout (then 503). POST /mode with
`ok`, `fail` (503 to everything) or `chaos` changes the behaviour; a batch holding an event of type
`poison` is refused with 400 (a permanent refusal: dead-lettered by the sender).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time

from eventtrack.streaming.signing import HEADER, verify

SECRET = os.environ.get("RECEIVER_SECRET", "")
LOG = os.open(os.environ["RECEIVER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
HANG_SECONDS = float(os.environ.get("RECEIVER_HANG_SECONDS", "1.5"))
state = {"mode": os.environ.get("RECEIVER_MODE", "ok"), "chaos": float(os.environ.get("RECEIVER_CHAOS", "0"))}


async def _body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send, status: int, headers: list | None = None, body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    body = await _body(receive)
    if scope["path"] == "/mode":
        state["mode"] = body.decode()
        await _answer(send, 200)
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    batch = json.loads(body)
    events = batch["events"]
    status, extra, hang = 200, [], False
    roll = random.random()
    if any(e["event"] == "poison" for e in events):
        status = 400
    elif state["mode"] == "fail":
        status = 503
    elif state["mode"] == "chaos" and roll < state["chaos"]:
        kind = roll / state["chaos"]
        if kind < 0.5:
            status = 500
        elif kind < 0.75:
            status, extra = 429, [(b"retry-after", b"1")]
        else:
            status, hang = 503, True
    record = {
        "batch_id": batch["batch_id"],
        "webhook_id": headers.get("eventtrack-webhook-id"),
        "status": status,
        "signature_ok": verify(SECRET, headers.get(HEADER.lower(), ""), body, time.time()),
        "seqs": [e["seq"] for e in events],
        "uuids": [e["uuid"] for e in events],
        "distinct_ids": [e["distinct_id"] for e in events],
        "at": time.time(),
    }
    os.write(LOG, (json.dumps(record) + "\n").encode())
    if hang:  # past the sender's timeout: it gives up and retries
        await asyncio.sleep(HANG_SECONDS)
    await _answer(send, status, extra, b'{"error":"bad batch"}' if status == 400 else b"ok")
