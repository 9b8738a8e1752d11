"""The demo campus and the management commands."""

import io
from datetime import timedelta

import pytest
from django.core import serializers
from django.core.management import call_command
from django.utils import timezone

from access.models import Controller, Credential, Door, VisitorPass
from bookings.models import Booking, BookingPolicy, Resource
from campus.models import ApiToken, Building, Feature, Floor, Lease, Person, Site, Space, Tenant
from labs.models import Equipment, Incident, Qualification, StatusChange, UsageSession

pytestmark = pytest.mark.django_db

MODELS = [Site, Building, Floor, Feature, Space, Tenant, Lease]
MODELS += [BookingPolicy, Resource, Booking]
MODELS += [Equipment, StatusChange, Qualification, Incident, UsageSession]
MODELS += [Controller, Door, Credential, VisitorPass]


def snapshot():
    data = {m.__name__: serializers.serialize("json", m.objects.order_by("pk")) for m in MODELS}
    data["Person"] = list(
        Person.objects.order_by("pk").values_list(
            "pk",
            "email",
            "first_name",
            "last_name",
            "tenant_id",
            "is_tenant_admin",
            "is_facility_staff",
            "is_lab_technician",
            "password",
        )
    )
    return data


def test_the_demo_builds_a_realistic_campus_and_a_second_run_changes_nothing():
    call_command("seed_demo", stdout=io.StringIO())
    first = snapshot()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert snapshot() == first
    assert Tenant.objects.count() == 40
    assert Person.objects.count() == 300
    assert Space.objects.filter(kind="office").count() == 60
    assert Space.objects.filter(kind="meeting_room").count() == 12
    assert Space.objects.filter(kind="lab").count() == 8
    assert Floor.objects.count() == 3
    assert Tenant.objects.filter(tier="non_member").exists()
    assert Person.objects.filter(is_lab_technician=True).exists()
    assert "admin@technocampus.demo" in out.getvalue()
    assert Equipment.objects.filter(location__kind="lab").count() == 16
    assert Resource.objects.get(code="EQ-CEM-01").companions.get().code == "B-0.10-CTRL"
    assert Booking.objects.filter(is_maintenance=True, status="confirmed").count() == 1
    assert UsageSession.objects.filter(energy_wh__gt=0).count() > 10
    assert Qualification.objects.filter(valid_until__lte=timezone.now() + timedelta(days=14))
    assert Equipment.objects.filter(status="to_check").exists()


def test_issue_token_prints_a_working_token(bob):
    out = io.StringIO()
    call_command("issue_token", "BOB@acme.test", stdout=out)
    plaintext = out.getvalue().strip()
    assert ApiToken.authenticate(plaintext) == bob


def test_issue_token_for_an_unknown_email_fails_cleanly(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="No person"):
        call_command("issue_token", "ghost@nowhere.test")


def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", stdout=io.StringIO())


def test_the_admin_accepts_a_demo_login(client):
    call_command("seed_demo", stdout=io.StringIO())
    assert client.login(email="accueil@technocampus.demo", password="technocampus")
    assert client.get("/admin/").status_code == 200
    for model in ["space", "tenant", "person", "lease", "apitoken"]:
        assert client.get(f"/admin/campus/{model}/").status_code == 200, model
    assert client.get("/admin/campus/person/add/").status_code == 200
    for model in ["equipment", "qualification", "incident", "usagesession", "statuschange"]:
        assert client.get(f"/admin/labs/{model}/").status_code == 200, model
    assert client.get("/admin/labs/equipment/add/").status_code == 200
    assert client.get("/admin/labs/incident/add/").status_code == 200
    assert (
        client.get(f"/admin/labs/equipment/{Equipment.objects.first().pk}/change/").status_code
        == 200
    )
