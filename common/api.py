"""What every app's API module shares: input schemas that refuse unknown fields, the page of
a list, the error answers' schemas, the declaration of the error codes an operation answers,
and lookups that answer 422 or 404 in the API's format. Imports nothing of ours but
`common`; the NinjaAPI itself, its exception handlers and its OpenAPI document are the
project's (config/api.py)."""

from datetime import datetime
from typing import Annotated

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import QuerySet
from ninja import Field, Schema
from ninja.conf import settings as ninja_settings
from ninja.pagination import LimitOffsetPagination
from pydantic import ConfigDict, WithJsonSchema

from common.edge import BIGINT, query_int
from common.errors import CODES, Invalid, NotFound

REF_TEMPLATE = "#/components/schemas/{model}"


class FieldErrorOut(Schema):
    field: str
    message: str


class ConflictOut(Schema):
    """A booking in the way of the slot asked for."""

    resource: str = Field(description="The resource's code")
    start: datetime
    end: datetime
    status: str
    booking_id: int


class RefusalOut(Schema):
    """An occurrence of a series that was not booked, and why (`code`, from the error codes)."""

    start: datetime
    end: datetime
    code: str
    detail: str
    conflicts: list[ConflictOut]


class ErrorOut(Schema):
    """Every error answer: a readable detail and a stable code (the codes are listed, with
    their statuses, in the API's description); some codes carry more."""

    detail: str
    code: str
    errors: list[FieldErrorOut] | None = Field(None, description="`invalid`: each field's error")
    field: str | None = Field(None, description="The field at fault, when one is")
    conflicts: list[ConflictOut] | None = Field(None, description="`conflict`: what is in the way")
    refused: list[RefusalOut] | None = Field(
        None, description="`series_conflict`: each occurrence refused, never empty"
    )
    booking_id: int | None = Field(None, description="`booking_in_progress`: the booking")
    quota_minutes: int | None = Field(None, description="`quota_exceeded`: the monthly quota")
    left_minutes: int | None = Field(None, description="`quota_exceeded`: what is left of it")


def answers(*codes: str):
    """Declare the error codes an operation answers itself (put it under the route
    decorator); those that any operation of its shape may answer are added by `Schemas`."""
    unknown = set(codes) - CODES.keys()
    if unknown:
        raise ImproperlyConfigured(f"Unknown error codes {sorted(unknown)}: add them to CODES.")

    def mark(view):
        view.answers = (*getattr(view, "answers", ()), *codes)
        return view

    return mark


class Pages(LimitOffsetPagination):
    """`?limit=&offset=`, bounded by what a database can count to: beyond it SQLite answers
    "datatype mismatch" and PostgreSQL "bigint out of range" instead of a 422."""

    class Input(Schema):
        limit: query_int(1, BIGINT) = ninja_settings.PAGINATION_PER_PAGE
        offset: query_int(0, BIGINT) = 0


def choice(choices):
    """A field taking one of these Django choices, listed in place in the OpenAPI document:
    ninja files enums under their class names, and several of ours are named `Status`."""
    return Annotated[choices, WithJsonSchema({"type": "string", "enum": list(choices.values)})]


class In(Schema):
    """Input schemas refuse unknown fields, so that a typo is a 422 and not silently ignored.
    Their fields, and every query parameter, use the strict types of `common.edge`."""

    model_config = ConfigDict(extra="forbid")


def save_validated(obj, after_save=None):
    """Run the model's checks (constraints, cross-level rules), then save: 422 on failure.
    `after_save(obj)` runs in the same transaction (many-to-many fields)."""
    obj.full_clean()
    with transaction.atomic():
        obj.save()
        if after_save is not None:
            after_save(obj)
    return obj


def existing(model, pk: int, field: str):
    obj = model.objects.filter(pk=pk).first()
    if obj is None:
        raise Invalid(f"{field}: no {model._meta.verbose_name} with id {pk}.", field=field)
    return obj


def get_scoped(qs: QuerySet, pk: int, what: str):
    """The object with this id in the caller's scope (`qs`), or 404 (also for another
    tenant's: the caller may not know that it exists)."""
    obj = qs.filter(pk=pk).first()
    if obj is None:
        raise NotFound(f"No {what} with id {pk}.")
    return obj


def apply_fields(obj, data: dict, fk: dict):
    """Set these fields; a foreign key named in `fk` (field -> model) must exist (422)."""
    for name, value in data.items():
        if name in fk and value is not None:
            setattr(obj, name, existing(fk[name], value, name).pk)
        else:
            setattr(obj, name, value)


def not_null(data: dict, schema, nullable: set[str] = frozenset()) -> dict:
    """A PATCH may clear only the fields that can be empty; `null` elsewhere is a 422."""
    nulls = [k for k, v in data.items() if v is None and k not in nullable]
    if nulls:
        raise Invalid(f"{', '.join(nulls)}: may not be null.", field=nulls[0])
    return data
