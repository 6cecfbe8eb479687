"""The streaming benchmark's webhook receiver (bench/run_stream.py): answers 200 to everything, and for every
delivery appends one line to STREAM_RECEIVER_LOG: the time it had read the whole body (`time.time()`, the
clock the capture client reads its acks from), whether the signature verifies with STREAM_RECEIVER_SECRET,
and the delivered events' uuids:

    <unix time> <1|0> <uuid> <uuid> ...

One write(2) per delivery on an O_APPEND file (whole lines with several uvicorn workers); served by uvicorn
with the API's command line, in its own process group, so its CPU time is measured apart.
"""

from __future__ import annotations

import os
import time

import orjson

from eventtrack.streaming.signing import HEADER, verify

SECRET = os.environ.get("STREAM_RECEIVER_SECRET", "")
LOG = os.open(os.environ["STREAM_RECEIVER_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
_SIGNATURE = HEADER.lower().encode()


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    at = time.time()
    body = b"".join(chunks)
    if scope["method"] == "POST" and body:
        signature = next((v.decode() for k, v in scope["headers"] if k == _SIGNATURE), "")
        ok = verify(SECRET, signature, body, at)
        uuids = " ".join(e["uuid"] for e in orjson.loads(body)["events"])
        os.write(LOG, f"{at:.6f} {int(ok)} {uuids}\n".encode())
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
