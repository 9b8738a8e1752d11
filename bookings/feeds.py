"""Calendar feeds by secret token URL, for Outlook, Google Calendar and Thunderbird."""

from datetime import timedelta

from django.http import Http404, HttpResponse
from django.utils import timezone

from bookings import ical
from bookings.models import Booking, PersonFeed, Resource

FEED_PAST = timedelta(days=90)


def _ics(body: bytes, name: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="{name}.ics"'
    response["Cache-Control"] = "private, max-age=300"
    return response


def _recent(qs):
    return (
        qs.filter(end__gte=timezone.now() - FEED_PAST)
        .select_related("resource", "series__event")
        .order_by("start")
    )


def person_feed(request, token: str):
    feed = PersonFeed.objects.select_related("person").filter(token=token).first()
    if feed is None or not feed.person.is_active:
        raise Http404
    bookings = _recent(Booking.objects.filter(person=feed.person))
    return _ics(ical.feed(f"Technocampus — {feed.person.get_full_name()}", bookings), "bookings")


def resource_feed(request, token: str):
    resource = Resource.objects.filter(feed_token=token).first()
    if resource is None:
        raise Http404
    bookings = _recent(Booking.objects.filter(resource=resource))
    return _ics(ical.feed(f"Technocampus — {resource.name}", bookings, private=True), resource.code)
