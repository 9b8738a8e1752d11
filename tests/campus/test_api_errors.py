"""Every error under /api/ is JSON in the API's format, `{"detail", "code"}`: not only what the
operations answer, but also what Django answers around them (no such path, a method the
operation does not take, a Host not allowed, a body too large, an unexpected exception)."""

import ast
import logging
from importlib import import_module
from pathlib import Path

import pytest
from django.test import Client

from bookings.engine import SlotTaken
from bookings.policy import NotAllowed, PolicyRefused
from campus.auth import TokenAuth
from common import errors
from common.errors import CODES, DomainError

ROOT = Path(__file__).resolve().parents[2]

JSON = "application/json"


def assert_api_error(response, status: int, code: str):
    assert response.status_code == status, (response.status_code, response.content[:200])
    assert response["Content-Type"].startswith(JSON), response["Content-Type"]
    body = response.json()
    assert body["code"] == code and body["detail"], body
    return body


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/bookings/1/nope", "/api/v1/", "/api/", "/api/v2/me"]
)
def test_a_path_that_names_no_operation_is_a_json_404(db, path):
    assert_api_error(Client().get(path), 404, "not_found")


def test_a_trailing_slash_is_a_json_404_too(as_bob):
    # The operations have no trailing slash; Django's APPEND_SLASH redirect does not apply.
    assert_api_error(as_bob.get("/api/v1/me/"), 404, "not_found")


def test_portal_pages_keep_their_html_404(db):
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("delete", "/api/v1/me", "GET"),
        ("post", "/api/v1/me", "GET"),
        ("put", "/api/v1/bookings", "GET, POST"),
        ("options", "/api/v1/spaces", "GET, POST"),
    ],
)
def test_a_method_the_operation_does_not_take_is_a_json_405(as_bob, method, path, allowed):
    response = getattr(as_bob, method)(path)
    body = assert_api_error(response, 405, "method_not_allowed")
    assert set(response["Allow"].split(", ")) == set(allowed.split(", "))
    assert method.upper() in body["detail"] and response["Allow"] in body["detail"]


def test_a_malformed_json_body_is_a_json_422(as_bob):
    response = as_bob.post("/api/v1/bookings", "{not json", content_type=JSON)
    assert_api_error(response, 422, "invalid")


def test_a_body_beyond_the_upload_limit_is_a_json_413(as_bob, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = '{"title": "' + "x" * 2048 + '"}'
    response = as_bob.post("/api/v1/bookings", body, content_type=JSON)
    assert_api_error(response, 413, "too_large")
    # Within the limit, the same operation reads the body (and validates it).
    assert as_bob.post("/api/v1/bookings", "{}", content_type=JSON).status_code == 422


def test_a_host_not_allowed_is_a_json_400(db):
    response = Client().get("/api/v1/me", headers={"Host": "evil.example"})
    assert_api_error(response, 400, "bad_request")


@pytest.mark.parametrize("debug", [False, True])
def test_an_unexpected_exception_is_logged_and_answered_as_json_500(
    as_bob, monkeypatch, settings, caplog, debug
):
    settings.DEBUG = debug  # with DEBUG, django-ninja would answer a plain-text traceback

    def broken(self, request, token):
        raise RuntimeError("the token store is on fire")

    monkeypatch.setattr(TokenAuth, "authenticate", broken)
    as_bob.raise_request_exception = False
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = as_bob.get("/api/v1/me")
    body = assert_api_error(response, 500, "server_error")
    assert "on fire" not in body["detail"]  # nothing internal in the answer
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert logged and logged[0].exc_info[0] is RuntimeError  # but in the log, with its traceback


# ------------------------------------------------------------------ the table of codes


def _error_classes(cls=DomainError):
    for sub in cls.__subclasses__():
        yield sub
        yield from _error_classes(sub)


def _codes_raised() -> dict[str, set[str]]:
    """Every code the sources raise a DomainError with, and where: the class codes, and each
    `code="…"` (or the class's code when none is given) at a call of an error class."""
    import_module("config.urls")  # every app's API, hence every error class
    classes = {c.__name__: c for c in _error_classes()}
    found: dict[str, set[str]] = {}
    for c in classes.values():
        if "code" in vars(c):
            found.setdefault(c.code, set()).add(c.__qualname__)
    for app in ("campus", "bookings", "labs", "access"):
        for path in (ROOT / app).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name not in classes:
                    continue
                # DomainError(detail, code=None, **data): the code by name or second
                given = [k.value for k in node.keywords if k.arg == "code"] + node.args[1:2]
                code = given[0].value if given else classes[name].code
                assert isinstance(code, str), f"{path}:{node.lineno}: a code must be a literal"
                found.setdefault(code, set()).add(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_code_raised_is_in_the_table_with_its_status():
    raised = _codes_raised()
    missing = {code: where for code, where in raised.items() if code not in CODES}
    assert not missing, f"add these codes to common.errors.CODES: {missing}"


def test_a_refusal_is_answered_with_the_status_of_its_code():
    assert PolicyRefused("x", code="not_qualified").status == 403
    assert PolicyRefused("x", code="too_long").status == 422
    assert NotAllowed("x").status == 403 and SlotTaken("x").status == 409


def test_the_table_is_in_the_api_description_and_in_docs_errors_md(db):
    description = Client().get("/api/v1/openapi.json").json()["info"]["description"]
    assert errors.document() in description
    written = (ROOT / "docs" / "errors.md").read_text()
    assert written == "# Error codes\n\n" + errors.document(), (
        "docs/errors.md is out of date: uv run python -m common.errors > docs/errors.md"
    )
