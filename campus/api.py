"""The one NinjaAPI at /api/v1/: error mapping, and the campus endpoints (me, spaces, tenants,
people, leases, tokens). Other apps add their routers here."""

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, OperationalError, transaction
from django.http import Http404
from django.utils import timezone
from ninja import Field, NinjaAPI, Query, Router, Schema, Status
from ninja.conf import settings as ninja_settings
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder
from pydantic import ConfigDict, WithJsonSchema

from campus import invitations
from campus.auth import (
    api_auth,
    caller,
    get_scoped,
    is_staff,
    require_may_write_person,
    require_staff,
    visible_leases,
    visible_people,
    visible_tenants,
    visible_tokens,
)
from campus.errors import CODES, DomainError, Invalid, status_of
from campus.errors import document as errors_document
from campus.idempotency import HEADER as IDEMPOTENCY_KEY
from campus.idempotency import idempotent
from campus.models import ApiToken, Feature, Floor, Lease, Person, Space, Tenant
from common.edge import BIGINT, Day, Flag, Id, Int, QueryFlag, QueryId, query_int, rfc3339

log = logging.getLogger(__name__)


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


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


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
    # (and tells the ADMINS); campus.ops.ApiJsonErrors then answers the 500 as JSON.
    raise exc


@api.exception_handler(OperationalError)
def on_database_busy(request, exc):
    # SQLite's "database is locked" or a PostgreSQL serialisation failure: a retry will do.
    log.warning("database busy, answered 503: %s", exc)
    response = error(request, "busy", "The database is busy; retry in a moment.")
    response["Retry-After"] = "1"
    return response


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


def save_validated(obj, *, features: list[str] | None = None):
    """Run the model's checks (constraints, cross-level rules), then save: 422 on failure."""
    obj.full_clean()
    with transaction.atomic():
        obj.save()
        if features is not None:
            obj.features.set(features_by_code(features))
    return obj


def features_by_code(codes: list[str]) -> list[Feature]:
    found = list(Feature.objects.filter(code__in=codes))
    missing = sorted(set(codes) - {f.code for f in found})
    if missing:
        raise Invalid(f"features: unknown feature(s) {', '.join(missing)}.", field="features")
    return found


def existing(model, pk: int, field: str):
    obj = model.objects.filter(pk=pk).first()
    if obj is None:
        raise Invalid(f"{field}: no {model._meta.verbose_name} with id {pk}.", field=field)
    return obj


# ---------------------------------------------------------------- me and tokens

campus_router = Router(tags=["campus"])


class TenantBrief(Schema):
    id: int
    name: str
    tier: str


class MeOut(Schema):
    id: int
    email: str
    first_name: str
    last_name: str
    language: str
    tenant: TenantBrief | None
    roles: list[str]


@campus_router.get("/me", response=MeOut, summary="Who am I")
def me(request):
    return caller(request)


class TokenIn(In):
    name: str = Field(min_length=1, max_length=80)


class TokenOut(Schema):
    id: int
    name: str
    hint: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    @staticmethod
    def resolve_created_at(obj):
        return obj.created_at.isoformat()

    @staticmethod
    def resolve_last_used_at(obj):
        return obj.last_used_at.isoformat() if obj.last_used_at else None

    @staticmethod
    def resolve_revoked_at(obj):
        return obj.revoked_at.isoformat() if obj.revoked_at else None


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself, shown only this once.")


@campus_router.get("/me/tokens", response=list[TokenOut], summary="My API tokens")
@paginate(Pages)
def list_tokens(request):
    return visible_tokens(caller(request))


@campus_router.post("/me/tokens", response={201: TokenCreated}, summary="Create an API token")
def create_token(request, payload: TokenIn):
    token, plaintext = ApiToken.issue(caller(request), payload.name)
    token.token = plaintext
    return Status(201, token)


@campus_router.post("/me/tokens/{token_id}/revoke", response=TokenOut, summary="Revoke a token")
def revoke_token(request, token_id: int):
    token = get_scoped(visible_tokens(caller(request)), token_id, "token")
    token.revoke()
    return token


# ---------------------------------------------------------------- spaces

SpaceKind = Space.Kind
Email = Annotated[str, Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.\-_]{0,19}$"


class SpaceOut(Schema):
    id: int
    code: str
    name: str
    kind: str
    floor_id: int
    level: int
    building: str
    capacity: int
    area_m2: float | None
    features: list[str]
    bookable: bool
    is_active: bool

    @staticmethod
    def resolve_level(obj):
        return obj.floor.level

    @staticmethod
    def resolve_building(obj):
        return obj.floor.building.code

    @staticmethod
    def resolve_features(obj):
        return sorted(f.code for f in obj.features.all())


class SpaceFilter(Schema):
    kind: SpaceKind | None = None
    floor: QueryId | None = Field(None, description="Floor id")
    level: query_int(-5, 50) | None = Field(None, description="Floor level (0 = ground floor)")
    min_capacity: query_int(0, 100000) | None = None
    feature: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, description="Feature codes; a space must have all of them"
    )
    bookable: QueryFlag | None = None


class SpaceIn(In):
    floor_id: Id
    code: str = Field(pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=120)
    kind: SpaceKind
    capacity: Int = Field(0, ge=0, le=100000)
    area_m2: Decimal | None = Field(None, gt=0, max_digits=7, decimal_places=2)
    features: list[str] = []
    bookable: Flag = False
    is_active: Flag = True


class SpacePatch(In):
    floor_id: Id | None = None
    code: str | None = Field(None, pattern=CODE_PATTERN)
    name: str | None = Field(None, min_length=1, max_length=120)
    kind: SpaceKind | None = None
    capacity: Int | None = Field(None, ge=0, le=100000)
    area_m2: Decimal | None = Field(None, gt=0, max_digits=7, decimal_places=2)
    features: list[str] | None = None
    bookable: Flag | None = None
    is_active: Flag | None = None


def spaces_queryset():
    return Space.objects.select_related("floor__building").prefetch_related("features")


@campus_router.get("/spaces", response=list[SpaceOut], summary="Spaces, with filters")
@paginate(Pages)
def list_spaces(request, filters: Query[SpaceFilter]):
    qs = spaces_queryset()
    if filters.kind:
        qs = qs.filter(kind=filters.kind)
    if filters.floor is not None:
        qs = qs.filter(floor_id=filters.floor)
    if filters.level is not None:
        qs = qs.filter(floor__level=filters.level)
    if filters.min_capacity is not None:
        qs = qs.filter(capacity__gte=filters.min_capacity)
    if filters.bookable is not None:
        qs = qs.filter(bookable=filters.bookable)
    for code in set(filters.feature):
        qs = qs.filter(features__code=code)
    return qs


@campus_router.get("/spaces/{space_id}", response=SpaceOut, summary="One space")
def get_space(request, space_id: int):
    return get_scoped(spaces_queryset(), space_id, "space")


def _apply(obj, data: dict, fk: dict):
    for name, value in data.items():
        if name in fk and value is not None:
            setattr(obj, name, existing(fk[name], value, name).pk)
        else:
            setattr(obj, name, value)


@campus_router.post("/spaces", response={201: SpaceOut}, summary="Create a space (staff)")
@answers("staff_only", "conflict")
@idempotent
def create_space(request, payload: SpaceIn):
    require_staff(request)
    data = payload.model_dump()
    features = data.pop("features")
    space = Space()
    _apply(space, data, {"floor_id": Floor})
    save_validated(space, features=features)
    return Status(201, spaces_queryset().get(pk=space.pk))


@campus_router.patch("/spaces/{space_id}", response=SpaceOut, summary="Update a space (staff)")
@answers("staff_only", "conflict")
def update_space(request, space_id: int, payload: SpacePatch):
    require_staff(request)
    space = get_scoped(Space.objects.all(), space_id, "space")
    data = payload.model_dump(exclude_unset=True)
    features = data.pop("features", None)
    _apply(space, _not_null(data, SpacePatch, nullable={"area_m2"}), {"floor_id": Floor})
    save_validated(space, features=features)
    return spaces_queryset().get(pk=space.pk)


def _not_null(data: dict, schema, nullable: set[str] = frozenset()) -> dict:
    """A PATCH may clear only the fields that can be empty; `null` elsewhere is a 422."""
    nulls = [k for k, v in data.items() if v is None and k not in nullable]
    if nulls:
        raise Invalid(f"{', '.join(nulls)}: may not be null.", field=nulls[0])
    return data


# ---------------------------------------------------------------- tenants


class TenantOut(Schema):
    id: int
    name: str
    tier: str
    status: str
    contract_start: date
    contract_end: date | None
    contact_email: str


class TenantIn(In):
    name: str = Field(min_length=1, max_length=160)
    tier: Tenant.Tier
    status: choice(Tenant.Status) = Tenant.Status.ACTIVE
    contract_start: Day
    contract_end: Day | None = None
    contact_email: Email | None = None


class TenantPatch(In):
    name: str | None = Field(None, min_length=1, max_length=160)
    tier: Tenant.Tier | None = None
    status: choice(Tenant.Status) | None = None
    contract_start: Day | None = None
    contract_end: Day | None = None
    contact_email: Email | None = None


@campus_router.get(
    "/tenants", response=list[TenantOut], summary="Tenants (yours, or all for staff)"
)
@paginate(Pages)
def list_tenants(request):
    return visible_tenants(caller(request))


@campus_router.get("/tenants/{tenant_id}", response=TenantOut, summary="One tenant")
def get_tenant(request, tenant_id: int):
    return get_scoped(visible_tenants(caller(request)), tenant_id, "tenant")


@campus_router.post("/tenants", response={201: TenantOut}, summary="Create a tenant (staff)")
@answers("staff_only", "conflict")
@idempotent
def create_tenant(request, payload: TenantIn):
    require_staff(request)
    data = payload.model_dump()
    data["contact_email"] = data["contact_email"] or ""
    tenant = Tenant()
    _apply(tenant, data, {})
    return Status(201, save_validated(tenant))


@campus_router.patch("/tenants/{tenant_id}", response=TenantOut, summary="Update a tenant (staff)")
@answers("staff_only", "conflict")
def update_tenant(request, tenant_id: int, payload: TenantPatch):
    require_staff(request)
    tenant = get_scoped(Tenant.objects.all(), tenant_id, "tenant")
    data = _not_null(
        payload.model_dump(exclude_unset=True),
        TenantPatch,
        nullable={"contract_end", "contact_email"},
    )
    if "contact_email" in data:
        data["contact_email"] = data["contact_email"] or ""
    _apply(tenant, data, {})
    return save_validated(tenant)


# ---------------------------------------------------------------- people

Language = Annotated[str, Field(pattern="^(fr|en)$")]


class PersonOut(Schema):
    id: int
    email: str
    first_name: str
    last_name: str
    phone: str
    tenant_id: int | None
    is_tenant_admin: bool
    is_facility_staff: bool
    is_lab_technician: bool
    is_active: bool
    language: str


class PersonIn(In):
    email: Email
    first_name: str = Field(min_length=1, max_length=80)
    last_name: str = Field(min_length=1, max_length=80)
    phone: str = Field("", max_length=30)
    tenant_id: Id | None = None
    is_tenant_admin: Flag = False
    is_facility_staff: Flag = False
    is_lab_technician: Flag = False
    is_active: Flag = True
    language: Language = "fr"


class PersonPatch(In):
    email: Email | None = None
    first_name: str | None = Field(None, min_length=1, max_length=80)
    last_name: str | None = Field(None, min_length=1, max_length=80)
    phone: str | None = Field(None, max_length=30)
    tenant_id: Id | None = None
    is_tenant_admin: Flag | None = None
    is_facility_staff: Flag | None = None
    is_lab_technician: Flag | None = None
    is_active: Flag | None = None
    language: Language | None = None


@campus_router.get(
    "/people", response=list[PersonOut], summary="People (your tenant's, or all for staff)"
)
@paginate(Pages)
def list_people(request, tenant: QueryId | None = None):
    qs = visible_people(caller(request))
    if tenant is not None:
        qs = qs.filter(tenant_id=tenant)
    return qs


@campus_router.get("/people/{person_id}", response=PersonOut, summary="One person")
def get_person(request, person_id: int):
    return get_scoped(visible_people(caller(request)), person_id, "person")


def add_person(actor: Person, data: dict) -> Person:
    """Add a person (POST /people, the portal's "add a colleague"): who may is
    `require_may_write_person`. No password: an active person is invited by e-mail to choose
    one (after the commit). 403 Forbidden or 422 ValidationError otherwise."""
    data = dict(data)
    if not is_staff(actor) and data.get("tenant_id") is None:
        data["tenant_id"] = actor.tenant_id
    require_may_write_person(actor, data, None)
    target = Person.objects.build(data.pop("email"))
    _apply(target, data, {"tenant_id": Tenant})
    save_validated(target)
    invitations.invite(target, by=actor)
    return target


@campus_router.post("/people", response={201: PersonOut}, summary="Add a person")
@answers("staff_only", "conflict")
@idempotent
def create_person(request, payload: PersonIn):
    return Status(201, add_person(caller(request), payload.model_dump()))


@campus_router.patch("/people/{person_id}", response=PersonOut, summary="Update a person")
@answers("staff_only", "conflict")
def update_person(request, person_id: int, payload: PersonPatch):
    me_ = caller(request)
    target = get_scoped(visible_people(me_), person_id, "person")
    data = _not_null(payload.model_dump(exclude_unset=True), PersonPatch, nullable={"tenant_id"})
    require_may_write_person(me_, data, target)
    if "email" in data:
        data["email"] = data["email"].lower()
    _apply(target, data, {"tenant_id": Tenant})
    return save_validated(target)


class InvitationOut(Schema):
    person_id: int
    email: str
    valid_until: datetime = Field(description="Until when the new link works")


@campus_router.post(
    "/people/{person_id}/invitation",
    response={202: InvitationOut},
    summary="Send a person's invitation again (409 once they have a password)",
)
@answers("staff_only", "inactive", "already_signed_up")
def resend_invitation(request, person_id: int):
    me_ = caller(request)
    target = get_scoped(visible_people(me_), person_id, "person")
    valid_until = invitations.resend(me_, target)
    return Status(
        202,
        {
            "person_id": target.pk,
            "email": target.email,
            "valid_until": timezone.localtime(valid_until),
        },
    )


# ---------------------------------------------------------------- leases


class LeaseOut(Schema):
    id: int
    tenant_id: int
    space_id: int
    space_code: str
    start: date
    end: date | None

    @staticmethod
    def resolve_space_code(obj):
        return obj.space.code


class LeaseIn(In):
    tenant_id: Id
    space_id: Id
    start: Day
    end: Day | None = None


class LeasePatch(In):
    start: Day | None = None
    end: Day | None = None


@campus_router.get(
    "/leases", response=list[LeaseOut], summary="Leases (your tenant's, or all for staff)"
)
@paginate(Pages)
def list_leases(request):
    return visible_leases(caller(request))


@campus_router.get("/leases/{lease_id}", response=LeaseOut, summary="One lease")
def get_lease(request, lease_id: int):
    return get_scoped(visible_leases(caller(request)), lease_id, "lease")


@campus_router.post("/leases", response={201: LeaseOut}, summary="Create a lease (staff)")
@answers("staff_only", "conflict")
@idempotent
def create_lease(request, payload: LeaseIn):
    require_staff(request)
    lease = Lease()
    _apply(lease, payload.model_dump(), {"tenant_id": Tenant, "space_id": Space})
    return Status(201, save_validated(lease))


@campus_router.patch("/leases/{lease_id}", response=LeaseOut, summary="Update a lease (staff)")
@answers("staff_only", "conflict")
def update_lease(request, lease_id: int, payload: LeasePatch):
    require_staff(request)
    lease = get_scoped(Lease.objects.select_related("space"), lease_id, "lease")
    data = _not_null(payload.model_dump(exclude_unset=True), LeasePatch, nullable={"end"})
    _apply(lease, data, {})
    return save_validated(lease)


api.add_router("/", campus_router)


def _add_app_routers():
    # Imported here: the apps' routers import helpers from this module.
    from bookings.api import router as bookings_router
    from labs.api import router as labs_router

    api.add_router("/", bookings_router)
    api.add_router("/", labs_router)
    api.add_router("/", "access.api.router")


_add_app_routers()
