"""The booking pages' URLs: find and book, my bookings, the waitlist, the staff's approvals
and day, and the calendar feeds."""

from django.urls import path

from bookings import feeds, pages, staff_pages

urlpatterns = [
    path("book/", pages.book, name="book"),
    path("book/day/", pages.day_grid, name="day-grid"),
    path("bookings/", pages.my_bookings, name="my-bookings"),
    path("bookings/<int:booking_id>/cancel/", pages.cancel_booking, name="cancel-booking"),
    path("bookings/<int:booking_id>/check-in/", pages.check_in, name="check-in"),
    path("bookings/<int:booking_id>/move/", pages.move_booking, name="move-booking"),
    path("waitlist/", pages.my_waitlist, name="waitlist"),
    path("waitlist/join/", pages.join_waitlist, name="waitlist-join"),
    path("waitlist/<int:entry_id>/accept/", pages.accept_offer, name="waitlist-accept"),
    path("waitlist/<int:entry_id>/leave/", pages.leave_waitlist, name="waitlist-leave"),
    path("account/calendar/", pages.calendar_feed, name="calendar-feed"),
    path("staff/approvals/", staff_pages.approvals, name="approvals"),
    path(
        "staff/approvals/<int:booking_id>/approve/",
        staff_pages.decide,
        {"decision": "approve"},
        name="approve",
    ),
    path(
        "staff/approvals/<int:booking_id>/reject/",
        staff_pages.decide,
        {"decision": "reject"},
        name="reject",
    ),
    path("staff/today/", staff_pages.today, name="today"),
    path("calendar/person/<str:token>.ics", feeds.person_feed, name="person-feed"),
    path("calendar/resource/<str:token>.ics", feeds.resource_feed, name="resource-feed"),
]
