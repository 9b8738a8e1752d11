"""The tenant pages in a real browser (Debian's Chromium, as in test_browser): a recurring
booking previews its conflict before booking, the calendar feed page gives a URL that
answers text/calendar, a tenant admin suspends a badge, a colleague they add chooses a
password from the invitation and signs in; and a 375 px phone never scrolls sideways on
these pages. Screenshots go to test-artifacts/."""

# ruff: noqa: F811  (the browser fixtures are imported from test_browser)
import re

import pytest
from django.core import mail

from access.models import AuditEvent, Credential
from bookings.engine import Slot, book
from bookings.models import Booking
from tests.labs.conftest import equipment_policy, lab_policy, printer, qualify  # noqa: F401
from tests.portal.conftest import tomorrow
from tests.portal.test_browser import (  # noqa: F401
    PHONE,
    assert_every_control_is_labelled,
    assert_no_sideways_scroll,
    browser,
    new_page,
    shoot,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_recurring_booking_preview_shows_the_conflict_before_booking(
    new_page, bob, charlie, rooms
):
    book(charlie, Slot(rooms["loire"], tomorrow(10, days=8), tomorrow(11, days=8)))
    page = new_page()
    sign_in(page, "bob@acme.test", "pw-Bob")
    page.get_by_role("link", name="Book a room").first.click()
    page.get_by_label(re.compile(r"^Date")).fill(tomorrow(10).date().isoformat())
    page.get_by_label("Start time").fill("10:00")
    page.get_by_label("End time").fill("11:00")
    page.get_by_label("Number of people").fill("4")
    page.get_by_text("Repeat (a recurring booking)").click()
    page.get_by_label(re.compile(r"^Repeat:?$")).select_option("weekly")
    page.get_by_role("spinbutton", name="Number of times").fill("3")
    assert_every_control_is_labelled(page)
    page.get_by_role("button", name="Find free rooms").click()
    page.get_by_role("button", name="Check every time – Salle Loire").click()

    preview = page.get_by_role("region", name=re.compile("Before booking: Salle Loire"))
    text = preview.inner_text()
    assert "2 of 3 times can be booked." in text
    assert "not bookable" in text and "B-1.50 is already booked from" in text
    assert page.evaluate("document.activeElement.id") == "preview"
    assert not Booking.objects.filter(person=bob).exists()  # a preview books nothing
    shoot(page, "series-preview")

    preview.get_by_role("button", name="Book 2 times").click()
    page.wait_for_url(re.compile(r"/bookings/#booking-\d+$"))
    assert "Booked 2 times: Salle Loire" in page.get_by_role("status").inner_text()
    assert Booking.objects.filter(person=bob).count() == 2
    shoot(page, "series-booked")


def test_the_calendar_feed_page_gives_a_url_that_answers_a_calendar(
    new_page, bob, bobs_booking, live_server, settings
):
    settings.SITE_URL = live_server.url
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "bob@acme.test", "pw-Bob")
    page.get_by_role("navigation").get_by_role("link", name="My account").click()
    page.get_by_role("link", name=re.compile("Calendar feed")).click()
    url = page.get_by_label("Your private calendar link").input_value()
    assert url.startswith(live_server.url + "/calendar/person/") and url.endswith(".ics")
    page.get_by_role("button", name="Copy the link").click()
    page.get_by_role("status").filter(has_text="Copied").wait_for()  # the copy is async
    assert page.evaluate("navigator.clipboard.readText()") == url
    answer = page.request.get(url)
    assert answer.ok and answer.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VCALENDAR" in answer.text() and "Bob's review" in answer.text()
    shoot(page, "calendar-feed")

    page.get_by_role("button", name="Change my calendar link").click()
    assert "the old link no longer works" in page.get_by_role("status").inner_text()
    assert page.request.get(url).status == 404
    assert page.get_by_label("Your private calendar link").input_value() != url


def test_a_tenant_admin_suspends_a_badge(new_page, alice, bob):
    badge = Credential(holder=bob)
    badge.set_uid("04A1B2C3")
    badge.save()
    page = new_page()
    sign_in(page, "alice@acme.test", "pw-Alice")
    page.get_by_role("navigation").get_by_role("link", name="My company").click()
    page.get_by_role("link", name=re.compile("People and badges")).click()
    card = page.locator(f"#badge-{badge.pk}")
    assert "Status: active" in card.inner_text()
    assert_every_control_is_labelled(page)
    shoot(page, "company-people")
    card.get_by_label("Why (optional, kept in the log)").fill("Badge left in a taxi")
    card.get_by_role("button", name=re.compile("^Suspend")).click()
    assert "suspended" in page.get_by_role("status").inner_text()
    assert "Status: suspended" in page.locator(f"#badge-{badge.pk}").inner_text()
    badge.refresh_from_db()
    assert badge.status == "suspended"
    event = AuditEvent.objects.get(credential=badge)
    assert (event.actor, event.reason, event.detail["why"]) == (
        alice,
        "portal",
        "Badge left in a taxi",
    )
    shoot(page, "company-badge-suspended")


def test_the_tenant_pages_fit_a_phone(new_page, alice, bob, rooms, bobs_booking, printer):
    qualify(alice, printer, until=tomorrow(10, days=90))
    page = new_page(viewport=PHONE)
    sign_in(page, "alice@acme.test", "pw-Alice")
    pages = {
        "phone-series": f"/book/?date={tomorrow(10).date()}&start=10:00&end=11:00"
        "&capacity=2&repeat=weekly&count=4&ends=count",
        "phone-move": f"/bookings/{bobs_booking.pk}/move/",
        "phone-waitlist": "/waitlist/",
        "phone-calendar": "/account/calendar/",
        "phone-tokens": "/account/tokens/",
        "phone-equipment": "/equipment/",
        "phone-equipment-detail": f"/equipment/{printer.pk}/",
        "phone-incident": f"/equipment/{printer.pk}/incident/",
        "phone-people": "/company/people/",
        "phone-visitors": "/company/visitors/",
        "phone-usage": "/company/usage/",
    }
    for name, url in pages.items():
        page.goto(url)
        assert_no_sideways_scroll(page)
        assert_every_control_is_labelled(page)
        shoot(page, name)


def test_a_colleague_added_on_the_company_page_chooses_a_password_and_signs_in(
    new_page, alice, settings, live_server
):
    settings.SITE_URL = live_server.url
    page = new_page()
    sign_in(page, "alice@acme.test", "pw-Alice")
    page.goto("/company/people/")
    form = page.get_by_role("region", name="Add a colleague")
    form.get_by_label("First name").fill("Dana")
    form.get_by_label("Last name").fill("Doe")
    form.get_by_label("E-mail address").fill("dana@acme.test")
    form.get_by_label("Language").select_option("en")
    form.get_by_role("button", name="Add the colleague").click()
    assert "invites them to choose a password" in page.get_by_role("status").inner_text()
    [message] = mail.outbox
    link = re.search(r"http\S+/accounts/invitation/\S+/", message.body).group(0)

    invited = new_page()
    invited.goto(link)
    assert invited.get_by_role("heading", level=1).inner_text() == "Choose your password"
    assert_every_control_is_labelled(invited)
    shoot(invited, "invitation-set-password")
    invited.get_by_label("New password:", exact=True).fill("A long enough secret 42")
    invited.get_by_label("New password confirmation").fill("A long enough secret 42")
    invited.get_by_role("button", name="Save my password").click()
    invited.get_by_role("heading", name="Password saved").wait_for()
    sign_in(invited, "dana@acme.test", "A long enough secret 42")
    assert invited.locator(".who").inner_text() == "Dana Doe"
