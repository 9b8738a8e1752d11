"""The campus endpoints of the API: me and my tokens, spaces, tenants, people, leases. The
NinjaAPI that mounts this router is the project's (config/api.py)."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from django.db.models import Q
from ninja import Field, FilterLookup, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import paginate

from campus import clock, people
from campus.auth import caller, require_staff, visible_tokens
from campus.idempotency import idempotent
from campus.models import ApiToken, Feature, Floor, Lease, Space, Tenant
from campus.people import visible_leases, visible_people, visible_tenants
from common.api import (
    In,
    Pages,
    answers,
    apply_fields,
    choice,
    get_scoped,
    not_null,
    save_validated,
)
from common.edge import Day, Flag, Id, Int, QueryFlag, QueryId, query_int
from common.errors import Invalid


def _set_features(codes: list[str] | None):
    """What saves a space's features, if they were given: 422 for an unknown code."""
    if codes is None:
        return None
    features = features_by_code(codes)
    return lambda space: space.features.set(features)


def features_by_code(codes: list[str]) -> list[Feature]:
    found = list(Feature.objects.filter(code__in=codes))
    missing = sorted(set(codes) - {f.code for f in found})
    if missing:
        raise Invalid(f"features: unknown feature(s) {', '.join(missing)}.", field="features")
    return found


# ---------------------------------------------------------------- me and tokens

router = Router(tags=["campus"])


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


@router.get("/me", response=MeOut, summary="Who am I")
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


@router.get("/me/tokens", response=list[TokenOut], summary="My API tokens")
@paginate(Pages)
def list_tokens(request):
    return visible_tokens(caller(request))


@router.post("/me/tokens", response={201: TokenCreated}, summary="Create an API token")
def create_token(request, payload: TokenIn):
    token, plaintext = ApiToken.issue(caller(request), payload.name)
    token.token = plaintext
    return Status(201, token)


@router.post("/me/tokens/{token_id}/revoke", response=TokenOut, summary="Revoke a token")
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


class SpaceFilter(FilterSchema):
    kind: SpaceKind | None = None
    floor: Annotated[QueryId | None, FilterLookup("floor_id")] = Field(None, description="Floor id")
    level: Annotated[query_int(-5, 50) | None, FilterLookup("floor__level")] = Field(
        None, description="Floor level (0 = ground floor)"
    )
    min_capacity: Annotated[query_int(0, 100000) | None, FilterLookup("capacity__gte")] = None
    feature: list[Annotated[str, Field(max_length=40)]] = Field(
        default_factory=list, description="Feature codes; a space must have all of them"
    )
    bookable: QueryFlag | None = None

    def filter_feature(self, codes: list[str]) -> Q:
        # One subquery per code: a single join would ask one feature row to hold every code.
        q = Q()
        for code in sorted(set(codes)):
            q &= Q(pk__in=Space.objects.filter(features__code=code).values("pk"))
        return q


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


@router.get("/spaces", response=list[SpaceOut], summary="Spaces, with filters")
@paginate(Pages)
def list_spaces(request, filters: Query[SpaceFilter]):
    return filters.filter(spaces_queryset())


@router.get("/spaces/{space_id}", response=SpaceOut, summary="One space")
def get_space(request, space_id: int):
    return get_scoped(spaces_queryset(), space_id, "space")


@router.post("/spaces", response={201: SpaceOut}, summary="Create a space (staff)")
@answers("staff_only", "conflict")
@idempotent
def create_space(request, payload: SpaceIn):
    require_staff(request)
    data = payload.model_dump()
    features = data.pop("features")
    space = Space()
    apply_fields(space, data, {"floor_id": Floor})
    save_validated(space, after_save=_set_features(features))
    return Status(201, spaces_queryset().get(pk=space.pk))


@router.patch("/spaces/{space_id}", response=SpaceOut, summary="Update a space (staff)")
@answers("staff_only", "conflict")
def update_space(request, space_id: int, payload: SpacePatch):
    require_staff(request)
    space = get_scoped(Space.objects.all(), space_id, "space")
    data = payload.model_dump(exclude_unset=True)
    features = data.pop("features", None)
    apply_fields(space, not_null(data, SpacePatch, nullable={"area_m2"}), {"floor_id": Floor})
    save_validated(space, after_save=_set_features(features))
    return spaces_queryset().get(pk=space.pk)


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


@router.get("/tenants", response=list[TenantOut], summary="Tenants (yours, or all for staff)")
@paginate(Pages)
def list_tenants(request):
    return visible_tenants(caller(request))


@router.get("/tenants/{tenant_id}", response=TenantOut, summary="One tenant")
def get_tenant(request, tenant_id: int):
    return get_scoped(visible_tenants(caller(request)), tenant_id, "tenant")


@router.post("/tenants", response={201: TenantOut}, summary="Create a tenant (staff)")
@answers("staff_only", "conflict")
@idempotent
def create_tenant(request, payload: TenantIn):
    require_staff(request)
    data = payload.model_dump()
    data["contact_email"] = data["contact_email"] or ""
    tenant = Tenant()
    apply_fields(tenant, data, {})
    return Status(201, save_validated(tenant))


@router.patch("/tenants/{tenant_id}", response=TenantOut, summary="Update a tenant (staff)")
@answers("staff_only", "conflict")
def update_tenant(request, tenant_id: int, payload: TenantPatch):
    require_staff(request)
    tenant = get_scoped(Tenant.objects.all(), tenant_id, "tenant")
    data = not_null(
        payload.model_dump(exclude_unset=True),
        TenantPatch,
        nullable={"contract_end", "contact_email"},
    )
    if "contact_email" in data:
        data["contact_email"] = data["contact_email"] or ""
    apply_fields(tenant, data, {})
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


@router.get("/people", response=list[PersonOut], summary="People (your tenant's, or all for staff)")
@paginate(Pages)
def list_people(request, tenant: QueryId | None = None):
    qs = visible_people(caller(request))
    if tenant is not None:
        qs = qs.filter(tenant_id=tenant)
    return qs


@router.get("/people/{person_id}", response=PersonOut, summary="One person")
def get_person(request, person_id: int):
    return get_scoped(visible_people(caller(request)), person_id, "person")


@router.post("/people", response={201: PersonOut}, summary="Add a person")
@answers("staff_only", "conflict")
@idempotent
def create_person(request, payload: PersonIn):
    return Status(201, people.add_person(caller(request), payload.model_dump()))


@router.patch("/people/{person_id}", response=PersonOut, summary="Update a person")
@answers("staff_only", "conflict")
def update_person(request, person_id: int, payload: PersonPatch):
    me_ = caller(request)
    target = get_scoped(visible_people(me_), person_id, "person")
    data = not_null(payload.model_dump(exclude_unset=True), PersonPatch, nullable={"tenant_id"})
    return people.change_person(me_, target, data)


class InvitationOut(Schema):
    person_id: int
    email: str
    valid_until: datetime = Field(description="Until when the new link works")


@router.post(
    "/people/{person_id}/invitation",
    response={202: InvitationOut},
    summary="Send a person's invitation again (409 once they have a password)",
)
@answers("staff_only", "inactive", "already_signed_up")
def resend_invitation(request, person_id: int):
    me_ = caller(request)
    target = get_scoped(visible_people(me_), person_id, "person")
    valid_until = people.resend_invitation(me_, target)
    return Status(
        202,
        {
            "person_id": target.pk,
            "email": target.email,
            "valid_until": clock.local(valid_until),
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


@router.get("/leases", response=list[LeaseOut], summary="Leases (your tenant's, or all for staff)")
@paginate(Pages)
def list_leases(request):
    return visible_leases(caller(request))


@router.get("/leases/{lease_id}", response=LeaseOut, summary="One lease")
def get_lease(request, lease_id: int):
    return get_scoped(visible_leases(caller(request)), lease_id, "lease")


@router.post("/leases", response={201: LeaseOut}, summary="Create a lease (staff)")
@answers("staff_only", "conflict")
@idempotent
def create_lease(request, payload: LeaseIn):
    require_staff(request)
    lease = Lease()
    apply_fields(lease, payload.model_dump(), {"tenant_id": Tenant, "space_id": Space})
    return Status(201, save_validated(lease))


@router.patch("/leases/{lease_id}", response=LeaseOut, summary="Update a lease (staff)")
@answers("staff_only", "conflict")
def update_lease(request, lease_id: int, payload: LeasePatch):
    require_staff(request)
    lease = get_scoped(Lease.objects.select_related("space"), lease_id, "lease")
    data = not_null(payload.model_dump(exclude_unset=True), LeasePatch, nullable={"end"})
    apply_fields(lease, data, {})
    return save_validated(lease)
