"""One error catalogue (errors.CATALOGUE; issue 14): every error code the code raises is in it, answers with
its status, and the capture endpoints document exactly the statuses their codes answer with.

Read from the code with `ast`: `ApiError.of("code", ...)`, `EventInvalid("code", ...)`, `OfrepError("code", ...)`
and the constructor itself, `ApiError(status=..., code=...)` (or positionally, which it refuses), whose status must
never be written at a call site (a module-level string constant counts as its value).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from eventtrack.errors import CATALOGUE, ApiError, EventInvalid
from ingest_api.openapi import openapi_document
from ingest_api.posthog.routes import CAPTURE_PATHS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (ROOT / "eventtrack", ROOT / "ingest_api")
# Where no error may be built with a status of its own: the code, its tools and its tests.
EVERYWHERE = (*PACKAGES, ROOT / "eventtrack_cli", ROOT / "orchestration", ROOT / "bench", ROOT / "tests")

# The constructor besides ApiError.of: errors.py itself, and app.py for Starlette's own HTTPExceptions (their
# status is Starlette's, read from the exception).
CONSTRUCTOR_USERS = ("eventtrack/errors.py", "ingest_api/app.py")

# The modules a capture request (native /capture/, /batch/, PostHog /e/, /batch/, ...) goes through.
CAPTURE_MODULES = (
    "eventtrack/errors.py",
    "ingest_api/decode.py",
    "ingest_api/validation.py",
    "ingest_api/write_keys.py",
    "ingest_api/capture_pipeline.py",
    "ingest_api/routes/body.py",
    "ingest_api/routes/capture.py",
    "ingest_api/posthog/decode.py",
    "ingest_api/posthog/translate.py",
    "ingest_api/posthog/capture.py",
)


def _callee(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return None


def error_calls(source: str) -> list[tuple[str, int | None, str | None]]:
    """(constructor, literal status or None, code) of every error built in `source`: all `ApiError(...)` calls
    (code None when not a known string), and the others when their code is a known string."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def text(arg: ast.expr) -> str | None:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return arg.value
        return constants.get(arg.id) if isinstance(arg, ast.Name) else None

    def argument(node: ast.Call, position: int, name: str) -> ast.expr | None:
        if len(node.args) > position:
            return node.args[position]
        return next((keyword.value for keyword in node.keywords if keyword.arg == name), None)

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = _callee(node)
        if callee in ("ApiError.of", "EventInvalid", "OfrepError") and node.args and text(node.args[0]) is not None:
            found.append((callee, None, text(node.args[0])))
        elif callee == "ApiError":
            status, code = argument(node, 0, "status"), argument(node, 1, "code")
            literal = status.value if isinstance(status, ast.Constant) else None
            found.append((callee, literal, None if code is None else text(code)))
    return found


def package_calls(packages=PACKAGES) -> dict[str, list[tuple[str, int | None, str | None]]]:
    return {
        str(path.relative_to(ROOT)): error_calls(path.read_text())
        for package in packages
        for path in sorted(package.rglob("*.py"))
    }


def test_the_scan_finds_every_spelling():
    source = (
        'X = "gone"\nApiError.of("a")\nApiError(404, "b", "d")\nEventInvalid("c", "d", {})\nOfrepError(X)\n'
        'ApiError(s, "e", "d")\nApiError(status=409, code=X, detail="d")\nApiError(status=s, code=c, detail="d")\n'
    )
    assert error_calls(source) == [
        ("ApiError.of", None, "a"),
        ("ApiError", 404, "b"),
        ("EventInvalid", None, "c"),
        ("OfrepError", None, "gone"),
        ("ApiError", None, "e"),
        ("ApiError", 409, "gone"),
        ("ApiError", None, None),
    ]


def test_every_code_raised_is_in_the_catalogue():
    calls = package_calls()
    assert sum(map(len, calls.values())) > 50  # the scan sees the package
    # The bare constructor (only in CONSTRUCTOR_USERS, see below) is for Starlette's statuses, not the catalogue's.
    unknown = sorted(
        {
            (path, code)
            for path, found in calls.items()
            for callee, _, code in found
            if callee != "ApiError" and code not in CATALOGUE
        }
    )
    assert not unknown, f"codes missing from errors.CATALOGUE: {unknown}"


def test_no_status_is_written_at_any_call_site():
    calls = package_calls(EVERYWHERE)
    assert "tests/unit/test_admin_http.py" in calls  # the scan sees the tests too
    del calls[str(Path(__file__).relative_to(ROOT))]  # but not this file's own examples of what is refused
    literal = sorted(
        (path, status, code) for path, found in calls.items() for _, status, code in found if status is not None
    )
    assert not literal, f"use ApiError.of(code, ...): the status comes from errors.CATALOGUE: {literal}"
    direct = sorted(
        path
        for path, found in calls.items()
        for callee, _, _ in found
        if callee == "ApiError" and path not in CONSTRUCTOR_USERS
    )
    assert not direct, f"use ApiError.of(code, ...), not the ApiError constructor: {direct}"


def test_the_constructor_refuses_a_positional_status():
    with pytest.raises(TypeError):
        ApiError(404, "not_found", "Nothing has this id.")
    err = ApiError(status=400, code="http_error", detail="Starlette's own")
    assert (err.status, err.fields, err.headers) == (400, {}, {})


def test_an_error_takes_status_and_default_detail_from_the_catalogue():
    err = ApiError.of("session_exists", fields={"session_id": "already used"})
    assert (err.status, err.code, err.detail, err.fields, err.headers) == (
        409,
        "session_exists",
        CATALOGUE["session_exists"].detail,
        {"session_id": "already used"},
        {},
    )
    assert ApiError.of("payload_too_large", "Too big.").body() == {
        "error": "payload_too_large",
        "detail": "Too big.",
        "fields": {},
    }
    with pytest.raises(KeyError):
        ApiError.of("no_such_code")


@pytest.mark.parametrize(
    ("code", "status"), [("event_too_large", 413), ("validation_error", 400), ("too_old", 400), ("invalid_number", 400)]
)
def test_a_refused_event_answers_with_its_codes_status(code, status):
    err = EventInvalid(code, "detail", {"event": "x"}).error()
    assert (err.status, err.code, err.detail, err.fields) == (status, code, "detail", {"event": "x"})


def test_capture_endpoints_document_the_statuses_of_their_codes():
    calls = package_calls()
    codes = {code for path in CAPTURE_MODULES for _, _, code in calls[path]}
    # Chosen at run time in validation.normalize_event, so not seen by the scan.
    codes |= {"too_deep", "invalid_number"}
    raised = {CATALOGUE[code].status for code in codes}
    paths = openapi_document()["paths"]
    for path in ("/api/v1/analytics/capture/", "/api/v1/analytics/batch/", *CAPTURE_PATHS):
        documented = {int(status) for status in paths[path]["post"]["responses"] if not status.startswith("2")}
        assert documented == raised, path


def admin_operations() -> list[tuple[str, str, dict]]:
    return [
        (path, method, operation)
        for path, item in openapi_document()["paths"].items()
        if path.startswith("/api/v1/analytics/admin/")
        for method, operation in item.items()
    ]


def test_admin_operations_document_the_statuses_of_their_codes():
    """Every admin operation: unauthorized (401), invalid_parameter (400), service_unavailable (503); one with a
    body reads it through admin.http.json_object (payload_too_large, 413); one with an integer id in its path
    looks it up through admin.http.path_id (not_found, 404)."""
    operations = admin_operations()
    assert len(operations) > 20  # the document has them
    for path, method, operation in operations:
        documented = {status for status in operation["responses"] if not status.startswith(("2", "3"))}
        has_id = any(p["in"] == "path" and p["schema"]["type"] == "integer" for p in operation.get("parameters", []))
        expected = (
            {"400", "401", "503"} | ({"413"} if "requestBody" in operation else set()) | ({"404"} if has_id else set())
        )
        assert documented == expected, f"{method.upper()} {path}"
