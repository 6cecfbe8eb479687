"""The signature checks docs/mobile_api.md gives receivers ("Verifying a delivery"), in Python and in Node,
run against signatures made by the delivery worker's own code (eventtrack/streaming/signing.py)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from eventtrack.streaming.signing import header_value, verify
from tests.docs_examples import examples

DOC = Path(__file__).resolve().parents[2] / "docs" / "mobile_api.md"
SECRET = "whsec_docs-example-secret"
BODY = b'{"destination_id":1,"batch_id":"1-5-6","events":[{"uuid":"a","seq":5},{"uuid":"b","seq":6}]}'


def example(language: str) -> str:
    [found] = [e.code for e in examples(DOC) if e.language == language and "erif" in e.code]
    return found


def cases() -> list[tuple[str, bytes, bool]]:
    now = int(time.time())
    good = header_value(SECRET, now, BODY)
    return [
        (good, BODY, True),
        (good, BODY.replace(b'"seq":6', b'"seq":7'), False),  # a changed body
        (header_value("another-secret-entirely", now, BODY), BODY, False),
        (header_value(SECRET, now - 600, BODY), BODY, False),  # too old: a replay
        ("t=abc,v1=00", BODY, False),
        ("", BODY, False),
    ]


def test_the_python_example_agrees_with_the_worker():
    namespace: dict = {}
    exec(compile(example("python"), str(DOC), "exec"), namespace)  # noqa: S102 - our own documented code
    for header, body, expected in cases():
        assert namespace["verify_delivery"](SECRET, header, body) is expected, header
        assert verify(SECRET, header, body, time.time()) is expected


def test_the_node_example_agrees_with_the_worker(tmp_path):
    module = tmp_path / "verify.mjs"
    module.write_text(example("js"))
    runner = tmp_path / "run.mjs"
    runner.write_text(
        'import { verifyDelivery } from "./verify.mjs";\n'
        'import { readFileSync } from "node:fs";\n'
        'const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));\n'
        "console.log(JSON.stringify(cases.map(([h, b]) => verifyDelivery(process.argv[3], h, Buffer.from(b, 'base64')))));\n"
    )
    import base64

    given = cases()
    data = tmp_path / "cases.json"
    data.write_text(json.dumps([[h, base64.b64encode(b).decode()] for h, b, _ in given]))
    done = subprocess.run(["node", str(runner), str(data), SECRET], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [expected for _, _, expected in given]
