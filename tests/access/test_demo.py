"""The demo's doors, controllers and badges (the campus demo's idempotency test covers them)."""

import io
import re
from collections import Counter

import pytest
from django.core.management import call_command

from access.models import Controller, Credential, Door, VisitorPass
from campus.models import Person, Space

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_every_room_has_a_door_and_every_controller_one_to_four(seeded):
    for kind in ("office", "lab", "meeting_room", "technical", "auditorium"):
        spaces = Space.objects.filter(kind=kind)
        assert spaces.exists()
        assert not spaces.filter(doors__isnull=True).exists(), kind
    perimeter = Door.objects.filter(kind="perimeter")
    assert Counter(perimeter.values_list("direction", flat=True)) == {"in": 1, "out": 1, "both": 1}
    assert Door.objects.filter(kind="floor").count() == 2
    per_controller = Counter(Door.objects.values_list("controller_id", flat=True))
    assert 35 <= Controller.objects.count() <= 45
    assert set(per_controller.values()) <= {1, 2, 3, 4}
    assert len(per_controller) == Controller.objects.count()
    assert not Controller.objects.filter(mqtt_password_hash="").exists()
    for door in Door.objects.select_related("space", "controller"):
        door.full_clean()


def test_every_demo_person_has_a_badge_and_two_staff_hold_master_cards(seeded):
    assert not Person.objects.filter(credentials__isnull=True).exists()
    masters = Credential.objects.filter(override=True).select_related("holder")
    assert masters.count() == 2 and all(m.holder.is_facility_staff for m in masters)
    visit = VisitorPass.objects.get()
    assert visit.credential.kind == "visitor" and visit.credential.status == "active"


def test_the_printed_uids_are_real_badges_and_a_second_run_keeps_passwords(seeded):
    uids = re.findall(r"^\s+(04[0-9A-F]{12})\s", seeded, flags=re.MULTILINE)
    assert len(uids) == 5
    for uid in uids:
        assert Credential.objects.filter(uid_hash=Credential.hash_uid(uid)).exists(), uid
    assert "door_scan" in seeded
    before = dict(Controller.objects.values_list("id", "mqtt_password_hash"))
    call_command("seed_demo", stdout=io.StringIO())
    assert dict(Controller.objects.values_list("id", "mqtt_password_hash")) == before


def test_a_suspended_demo_badge_stays_suspended_after_a_second_run(seeded):
    badge = Credential.objects.filter(holder__isnull=False, override=False).first()
    badge.status = "suspended"
    badge.save()
    call_command("seed_demo", stdout=io.StringIO())
    badge.refresh_from_db()
    assert badge.status == "suspended"
    assert Credential.objects.filter(holder=badge.holder, override=False).count() == 1
