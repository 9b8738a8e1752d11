"""`manage.py audit_retention`: old audit lines go, recent ones stay, nothing else deletes."""

from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from access.management.commands.audit_retention import months_before
from access.models import AuditEvent

PARIS = ZoneInfo("Europe/Paris")


def line(days_ago: int, result: str) -> AuditEvent:
    return AuditEvent.objects.create(
        kind="lockdown", result=result, ts=timezone.now() - timedelta(days=days_ago)
    )


def test_lines_older_than_twelve_months_are_deleted_by_default(db):
    line(400, "old")
    line(300, "recent")
    line(0, "today")
    out = StringIO()
    call_command("audit_retention", stdout=out)
    assert sorted(AuditEvent.objects.values_list("result", flat=True)) == ["recent", "today"]
    assert "Deleted 1 audit lines" in out.getvalue()


def test_the_retention_is_given_in_months(db):
    line(100, "three months ago")
    line(10, "last week")
    call_command("audit_retention", "--months", "2", stdout=StringIO())
    assert list(AuditEvent.objects.values_list("result", flat=True)) == ["last week"]


@pytest.mark.parametrize("months", ["0", "-3"])
def test_the_log_is_never_emptied_at_once(db, months):
    line(1, "kept")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("audit_retention", "--months", months)
    assert AuditEvent.objects.count() == 1


@pytest.mark.parametrize(
    "now,months,expected",
    [
        (datetime(2026, 5, 15, 10, tzinfo=PARIS), 12, datetime(2025, 5, 15, tzinfo=PARIS)),
        (datetime(2026, 3, 31, 10, tzinfo=PARIS), 1, datetime(2026, 2, 28, tzinfo=PARIS)),
        (datetime(2026, 1, 10, 0, 30, tzinfo=PARIS), 1, datetime(2025, 12, 10, tzinfo=PARIS)),
        (datetime(2028, 2, 29, 12, tzinfo=PARIS), 12, datetime(2027, 2, 28, tzinfo=PARIS)),
    ],
)
def test_the_cut_off_is_local_midnight_whole_months_back(now, months, expected):
    assert months_before(now, months) == expected
