"""Hierarchy invariants: database constraints with readable messages, cross-level rules."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campus.models import Building, Floor, Lease, Person, Space, Tenant


def test_a_site_cannot_hold_two_buildings_with_one_code(campus):
    with pytest.raises(IntegrityError), transaction.atomic():
        Building.objects.create(site=campus["site"], code="B", name="Twin")


def test_a_building_cannot_hold_two_floors_at_one_level(campus):
    with pytest.raises(IntegrityError), transaction.atomic():
        Floor.objects.create(building=campus["building"], level=1)


def test_the_duplicate_floor_message_is_readable(campus):
    with pytest.raises(ValidationError, match="already has a floor at this level"):
        Floor(building=campus["building"], level=1).full_clean()


def test_space_codes_are_unique(campus):
    with pytest.raises(IntegrityError), transaction.atomic():
        Space.objects.create(floor=campus["first"], code="B-1.01", name="Copy", kind="office")


def test_a_space_area_must_be_positive(campus):
    with pytest.raises(IntegrityError), transaction.atomic():
        Space.objects.create(
            floor=campus["first"], code="B-1.99", name="x", kind="office", area_m2=0
        )


def test_an_unknown_space_kind_is_refused_by_the_database(campus):
    with pytest.raises(IntegrityError), transaction.atomic():
        Space.objects.create(floor=campus["first"], code="B-1.98", name="x", kind="spaceship")


def test_a_space_code_must_start_with_its_building_code(campus):
    space = Space(floor=campus["first"], code="A-1.20", name="Wrong", kind="office")
    with pytest.raises(ValidationError, match="must start with the building code"):
        space.full_clean()


def test_a_contract_cannot_end_before_it_starts(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Tenant.objects.create(
            name="Backwards",
            tier="member",
            contract_start=date(2025, 1, 1),
            contract_end=date(2024, 1, 1),
        )


def test_a_lease_cannot_end_before_it_starts(acme, campus):
    with pytest.raises(ValidationError, match="cannot end before it starts"):
        Lease(
            tenant=acme, space=campus["office_globex"], start=date(2025, 1, 1), end=date(2024, 6, 1)
        ).full_clean()


def test_only_offices_workshops_and_desks_are_leased(acme, campus):
    with pytest.raises(ValidationError, match="Only offices"):
        Lease(tenant=acme, space=campus["meeting"], start=date(2025, 1, 1)).full_clean()


def test_an_office_is_not_leased_twice_at_once(acme, globex, campus):
    lease = Lease(tenant=globex, space=campus["office_acme"], start=date(2025, 1, 1))
    with pytest.raises(ValidationError, match="already leased"):
        lease.full_clean()


def test_a_lease_after_the_previous_one_ended_is_fine(acme, globex, campus):
    Lease.objects.filter(space=campus["office_acme"]).update(end=date(2024, 12, 31))
    Lease(tenant=globex, space=campus["office_acme"], start=date(2025, 1, 1)).full_clean()


def test_a_lease_lies_within_the_tenant_contract(campus):
    tenant = Tenant.objects.create(
        name="Short",
        tier="member",
        contract_start=date(2025, 1, 1),
        contract_end=date(2025, 12, 31),
    )
    with pytest.raises(ValidationError, match="within the tenant's contract"):
        Lease(tenant=tenant, space=campus["office_globex"], start=date(2025, 1, 1)).full_clean()


def test_a_person_belongs_to_a_tenant_or_is_staff(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Person.objects.create_user("nobody@x.test", first_name="No", last_name="Body")


def test_a_tenant_admin_needs_a_tenant(db):
    with pytest.raises(IntegrityError), transaction.atomic():
        Person.objects.create_user(
            "admin@x.test",
            first_name="A",
            last_name="B",
            is_facility_staff=True,
            is_tenant_admin=True,
        )


def test_roles_are_listed_for_each_kind_of_person(alice, bob, sam, tina):
    assert alice.roles == ["tenant_member", "tenant_admin"]
    assert bob.roles == ["tenant_member"]
    assert sam.roles == ["facility_staff"]
    assert tina.roles == ["lab_technician"]


def test_staff_and_technicians_reach_the_back_office_and_tenants_do_not(alice, sam, tina):
    assert sam.is_staff and tina.is_staff and not alice.is_staff
    assert sam.has_perm("campus.change_space")
    assert tina.has_perm("campus.view_space") and not tina.has_perm("campus.change_space")
    assert not alice.has_perm("campus.view_space")
