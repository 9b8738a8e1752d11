"""The one NinjaAPI at /api/v1/: its OpenAPI document, its exception handlers (each domain
error answered once, with the status the table of error codes gives it) and the routers of
the apps, mounted here."""

import logging
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, OperationalError, transaction
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder

from access.api import router as access_router
from bookings.api import router as bookings_router
from campus.api import router as campus_router
from campus.auth import api_auth
from campus.idempotency import HEADER as IDEMPOTENCY_KEY
from common.api import REF_TEMPLATE, ErrorOut
from common.edge import rfc3339
from common.errors import CODES, DomainError, status_of
from common.errors import document as errors_document
from labs.api import router as labs_router

log = logging.getLogger(__name__)


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def codes_answered(operation, details: dict) -> set[str]:
    """The error codes an operation may answer: its own (`answers`), and those of its shape."""
    codes = {"bad_request", "busy", *getattr(operation.view_func, "answers", ())}
    if operation.auth_callbacks:
        codes |= {"unauthenticated", "too_many_attempts"}
    parameters = details.get("parameters", [])
    if any(p["in"] == "path" for p in parameters):
        codes.add("not_found")
    if parameters or "requestBody" in details:
        codes.add("invalid")  # a parameter or a body the schema (or the models) refuse
    if "requestBody" in details:
        codes.add("too_large")
    if any(p["in"] == "header" and p["name"] == IDEMPOTENCY_KEY for p in parameters):
        codes |= {"idempotency_key_reused", "idempotency_key_in_use"}
    if set(operation.methods) - SAFE_METHODS:
        codes.add("csrf_failed")  # a browser session's unsafe request
    return codes


class Schemas(OpenAPISchema):
    """The OpenAPI document, with what ninja leaves out.

    One name, one schema: ninja files every operation's schemas under their names, the last
    one winning, so that two enums both named `Status` (a booking's and a badge's) made
    `GET /bookings` declare the badge statuses. A name given to two different schemas is
    refused here, when the document is built (tests build it).

    The errors of each operation: the codes it may answer (`codes_answered`), grouped by
    status, each status with the enum of its codes. They are answered by the exception
    handlers below, never through an operation's `response=` models: they are added to the
    document only, leaving each operation's runtime untouched."""

    def add_schema_definitions(self, definitions: dict) -> None:
        for name, schema in definitions.items():
            if self.schemas.get(name, schema) != schema:
                raise ImproperlyConfigured(f"Two different schemas are named {name!r}.")
        super().add_schema_definitions(definitions)

    def operation_details(self, operation) -> dict:
        details = super().operation_details(operation)
        error = ErrorOut.model_json_schema(ref_template=REF_TEMPLATE)
        self.add_schema_definitions({**error.pop("$defs", {}), "Error": error})
        by_status = {}
        for code in sorted(codes_answered(operation, details)):
            by_status.setdefault(status_of(code), []).append(code)
        for status, codes in sorted(by_status.items()):
            schema = {
                "allOf": [
                    {"$ref": REF_TEMPLATE.format(model="Error")},
                    {"properties": {"code": {"enum": codes}}},
                ]
            }
            details["responses"][status] = {
                "description": " ".join(f"`{c}`: {CODES[c].meaning}" for c in codes),
                "content": {"application/json": {"schema": schema}},
            }
        return details


class Api(NinjaAPI):
    """The NinjaAPI whose OpenAPI document is built by `Schemas`."""

    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        return Schemas(self, path_prefix)


class Rfc3339Encoder(NinjaJSONEncoder):
    """Every date-time answered with an offset RFC 3339 can write (common.edge.rfc3339)."""

    def default(self, o):
        if isinstance(o, datetime):
            o = rfc3339(o)
        return super().default(o)


class Renderer(JSONRenderer):
    encoder_class = Rfc3339Encoder


api = Api(
    title="Technocampus API",
    version="1",
    description="Rooms, equipment, bookings, doors and usage of the Technocampus.\n\n"
    + errors_document(),
    auth=api_auth,
    renderer=Renderer(),
    urls_namespace="api",
)


def error(request, code: str, detail, **extra):
    """An error answer, with the status CODES gives its code."""
    body = {"detail": detail, "code": code, **extra}
    return api.create_response(request, body, status=status_of(code))


def _location(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "payload", "query", "path")]
    return ".".join(parts) or "request"


@api.exception_handler(NinjaValidationError)
def on_invalid_input(request, exc):
    errors = [
        {"field": _location(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "Invalid input."
    return error(request, "invalid", detail, errors=errors)


@api.exception_handler(DjangoValidationError)
def on_model_invalid(request, exc):
    if hasattr(exc, "error_dict"):
        errors = [
            {"field": "request" if field == "__all__" else field, "message": str(m)}
            for field, messages in exc.message_dict.items()
            for m in messages
        ]
    else:
        errors = [{"field": "request", "message": str(m)} for m in exc.messages]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return error(request, "invalid", detail, errors=errors)


@api.exception_handler(DomainError)
def on_domain_error(request, exc):
    return error(request, exc.code, exc.detail, **exc.data)


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request, exc):
    return error(
        request, "unauthenticated", "Authentication required: sign in or send a valid Bearer token."
    )


@api.exception_handler(HttpError)
def on_http_error(request, exc):
    if exc.status_code == 400:  # a body that is not JSON: invalid input like any other
        return error(request, "invalid", "The request body is not valid JSON.")
    if "CSRF" in exc.message:
        return error(request, "csrf_failed", exc.message)
    code = {401: "unauthenticated", 403: "forbidden", 404: "not_found"}[exc.status_code]
    return error(request, code, exc.message)


@api.exception_handler(Http404)
def on_not_found(request, exc):
    return error(request, "not_found", "Not found.")


@api.exception_handler(ObjectDoesNotExist)
def on_object_missing(request, exc):
    return error(request, "not_found", "Not found.")


@api.exception_handler(IntegrityError)
def on_integrity_error(request, exc):
    # Constraints are checked by full_clean() first; this is the race where two requests
    # passed that check at once. The database kept its invariant; the caller may retry.
    log.info("integrity error answered 409: %s", exc)
    return error(request, "conflict", "This conflicts with data saved meanwhile; reload and retry.")


@api.exception_handler(OverflowError)
@api.exception_handler(DataError)
def on_out_of_range(request, exc):
    # A number beyond 64 bits (SQLite's driver: OverflowError), a value PostgreSQL refuses
    # (DataError: bigint out of range, …) or a date beyond year 9999 once converted: input
    # no column can hold, so invalid input rather than a server error.
    if isinstance(exc, DataError) and transaction.get_connection().in_atomic_block:
        # PostgreSQL has aborted the enclosing transaction: roll it back, not commit it.
        transaction.set_rollback(True)
    log.info("value out of range answered 422: %s", exc)
    return error(request, "invalid", "A value is out of range.")


@api.exception_handler(RequestDataTooBig)
def on_too_large(request, exc):
    # A body beyond DATA_UPLOAD_MAX_MEMORY_SIZE: Django calls it a suspicious operation (400).
    return error(request, "too_large", "The request body is too large.")


@api.exception_handler(Exception)
def on_unexpected(request, exc):
    # django-ninja's default answers a plain-text traceback when DEBUG is on and lets it
    # through otherwise: let it through always, so that Django logs it with its traceback
    # (and tells the ADMINS); config.ops.ApiJsonErrors then answers the 500 as JSON.
    raise exc


@api.exception_handler(OperationalError)
def on_database_busy(request, exc):
    # SQLite's "database is locked" or a PostgreSQL serialisation failure: a retry will do.
    log.warning("database busy, answered 503: %s", exc)
    response = error(request, "busy", "The database is busy; retry in a moment.")
    response["Retry-After"] = "1"
    return response


api.add_router("/", campus_router)
api.add_router("/", bookings_router)
api.add_router("/", labs_router)
api.add_router("/", access_router)
