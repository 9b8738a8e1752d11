"""Property test: whatever sequence of book / move / cancel / approve / reject people try,
confirmed bookings never overlap, and a pending request never overlaps a confirmed one."""

from datetime import timedelta
from itertools import combinations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookings import engine
from bookings.models import ACTIVE, Booking, BookingPolicy, Resource
from common.errors import DomainError
from tests.bookings.conftest import NOW, at

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("book"),
            st.integers(0, 2),
            st.integers(0, 1),
            st.integers(0, 2),
            st.integers(0, 30),
            st.integers(1, 8),
        ),
        st.tuples(
            st.just("move"),
            st.integers(0, 20),
            st.integers(0, 2),
            st.integers(0, 30),
            st.integers(1, 8),
        ),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
        st.tuples(st.just("approve"), st.integers(0, 20)),
        st.tuples(st.just("reject"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=25,
)


def overlapping(a: Booking, b: Booking) -> bool:
    return (
        a.resource_id == b.resource_id
        and a.blocked_start < b.blocked_end
        and b.blocked_start < a.blocked_end
    )


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=ops)
def test_no_sequence_of_operations_produces_an_overlap(bob, charlie, sam, campus, steps):
    with transaction.atomic():
        buffered = BookingPolicy.objects.create(
            name="buffered", buffer_after_minutes=15, max_advance_days=365
        )
        approval = BookingPolicy.objects.create(
            name="approval", approval_required=True, max_advance_days=365
        )
        resources = [
            Resource.objects.create(
                code="R1", name="R1", kind="meeting_room", capacity=9, policy=buffered
            ),
            Resource.objects.create(
                code="R2", name="R2", kind="auditorium", capacity=9, policy=approval
            ),
        ]
        people = [bob, charlie, sam]
        made = []
        for step in steps:
            try:
                if step[0] == "book":
                    _, who, res, day, slot, length = step
                    start = at(3 + day, 8) + timedelta(minutes=15 * slot)
                    made.append(
                        engine.book(
                            people[who],
                            engine.Slot(
                                resources[res], start, start + timedelta(minutes=15 * length)
                            ),
                            now=NOW,
                        )
                    )
                elif made:
                    target = made[step[1] % len(made)]
                    target.refresh_from_db()
                    if step[0] == "move":
                        start = at(3 + step[2], 8) + timedelta(minutes=15 * step[3])
                        engine.move(
                            sam, target, start, start + timedelta(minutes=15 * step[4]), now=NOW
                        )
                    elif step[0] == "cancel":
                        engine.cancel(sam, target, now=NOW)
                    elif step[0] == "approve":
                        engine.approve(sam, target, now=NOW)
                    else:
                        engine.reject(sam, target)
            except DomainError:
                pass
            live = list(Booking.objects.filter(status__in=[*ACTIVE, "pending"]))
            for a, b in combinations(live, 2):
                if overlapping(a, b):
                    assert a.status == b.status == "pending", (a, b)
        transaction.set_rollback(True)
