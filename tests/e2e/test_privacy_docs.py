"""The curl examples of docs/privacy.md, run as written against the running server."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "privacy.md"


def fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)


def commands() -> list[str]:
    lines = "\n".join(fenced("sh")).replace("\\\n", " ").splitlines()
    return [line.strip() for line in lines if line.strip().startswith("curl ")]


def test_every_curl_example_of_the_privacy_doc_works(api, admin_key, db, server, tmp_path):
    for event in (
        {"distinct_id": "user-42", "event_type": "purchase"},
        {"distinct_id": "anon-7f3a", "event_type": "app_open"},
    ):
        assert api.post("/api/v1/analytics/capture/", json=event).status_code == 200
    Path("/tmp/user-42.json").unlink(missing_ok=True)  # where the documented export writes
    examples = commands()
    assert len(examples) == 4
    export = next(c for c in examples if "/export/" in c)
    erase = next(c for c in examples if "-X DELETE" in c)
    # The export before the erasure (it finds the user's event), then the audit log listings see both.
    ordered = [export, erase, *(c for c in examples if c not in (export, erase))]
    outputs = []
    for command in ordered:
        run = subprocess.run(
            [
                "bash",
                "-c",
                "set -o pipefail; " + command.replace("http://localhost:8000", server.url) + " --fail-with-body",
            ],
            env={"KEY": admin_key, "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, (command, run.stdout, run.stderr)
        outputs.append(run.stdout)
    exported = json.loads(Path("/tmp/user-42.json").read_text())
    assert [e["event_type"] for e in exported["events"]] == ["purchase"]
    erased = json.loads(outputs[1])
    documented = json.loads(fenced("json")[0].replace('"019ac0de-..."', '"x"'))
    assert set(erased) == set(documented) and set(erased["deleted"]) == set(documented["deleted"])
    assert erased["deleted"]["events"] == 1
    assert [r["action"] for r in json.loads(outputs[2])["results"]] == ["erase_person", "export_person"]
    assert [r["action"] for r in json.loads(outputs[3])["results"]] == ["erase_person"]
