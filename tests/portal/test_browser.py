"""The portal in a real browser: Debian's Chromium driven by Playwright against live_server.

A tenant finds a room, books it, sees it, cancels it, and meets a conflict; staff approve a
request; the pages speak French and English; a 375 px phone never scrolls sideways.
Screenshots of the main pages go to test-artifacts/ (not committed).
"""

import os
import re
from pathlib import Path

import pytest
from django.utils import formats, translation

from bookings.engine import Slot, book
from bookings.models import Booking
from config.settings import BASE_DIR
from tests.conftest import CHROMIUM, _missing, browser_missing
from tests.portal.conftest import tomorrow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(BASE_DIR, "test-artifacts")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def browser():
    # Module scope runs before the per-test `_services` check: check here too.
    if why := browser_missing():
        _missing("browser", why)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop on this thread; Django would then refuse
    # the ORM calls the tests make between page steps, which are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def new_page(browser, live_server):
    """A page in a fresh browser context (its own cookies), at an optional viewport size."""
    contexts = []

    def make(viewport=None):
        context = browser.new_context(
            base_url=live_server.url, viewport=viewport or {"width": 1280, "height": 900}
        )
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shoot(page, name: str):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, email: str, password: str):
    page.goto("/")
    page.get_by_role("main").get_by_role("link", name="Sign in").click()
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("main").get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/$"))


def search_tomorrow(page, start="10:00", end="11:00", people="6", features=("Projector",)):
    page.get_by_role("link", name="Book a room").first.click()
    page.get_by_label("Date").fill(tomorrow(10).date().isoformat())
    page.get_by_label("Start time").fill(start)
    page.get_by_label("End time").fill(end)
    page.get_by_label("Number of people").fill(people)
    for feature in features:
        page.get_by_label(feature).check()
    page.get_by_role("button", name="Find free rooms").click()
    page.get_by_role("heading", name=re.compile("Free rooms")).wait_for()


def assert_no_sideways_scroll(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width}px wide"


def assert_every_control_is_labelled(page):
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
            .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
            .map(el => el.name)"""
    )
    assert unlabelled == []


def test_a_tenant_books_sees_and_cancels_a_room_then_meets_a_conflict(
    new_page, bob, charlie, rooms
):
    page = new_page()
    sign_in(page, "bob@acme.test", "pw-Bob")
    search_tomorrow(page)
    results = page.get_by_role("region", name=re.compile("Free rooms"))
    assert results.get_by_role("heading", level=3).all_inner_texts() == [
        "Salle Loire B-1.50",
        "Salle Maine B-0.03",
    ]
    assert_every_control_is_labelled(page)
    shoot(page, "book-results")

    page.get_by_role("button", name="Book Salle Loire").click()
    page.wait_for_url(re.compile(r"/bookings/#booking-\d+$"))
    status = page.get_by_role("status")
    assert "Booked: Salle Loire on" in status.inner_text()
    booking = Booking.objects.get()
    assert (booking.person, booking.resource, booking.attendees) == (bob, rooms["loire"], 6)
    card = page.locator(f"#booking-{booking.pk}")
    assert "Status: confirmed" in card.inner_text()
    shoot(page, "my-bookings")

    card.get_by_role("link", name=re.compile("Cancel")).click()
    page.get_by_role("heading", name="Cancel this booking?").wait_for()
    shoot(page, "cancel-confirmation")
    page.get_by_role("button", name="Yes, cancel the booking").click()
    assert "Cancelled: Salle Loire" in page.get_by_role("status").inner_text()
    assert "Status: cancelled" in page.locator(f"#booking-{booking.pk}").inner_text()
    booking.refresh_from_db()
    assert booking.status == "cancelled"

    # Someone else takes Salle Loire while Bob looks at the free rooms.
    search_tomorrow(page)
    book(charlie, Slot(rooms["loire"], tomorrow(10), tomorrow(11)))
    page.get_by_role("button", name="Book Salle Loire").click()
    alert = page.get_by_role("alert")
    assert "B-1.50 is already booked from" in alert.inner_text()
    assert page.evaluate("document.activeElement.id") == "booking-error"
    assert page.get_by_label("Number of people").input_value() == "6"
    assert page.get_by_label("Projector").is_checked()
    assert page.get_by_role("button", name="Book Salle Maine").is_visible()
    shoot(page, "book-conflict")


def test_staff_approve_a_pending_request(new_page, bob, sam, auditorium, always_open):
    request = book(bob, Slot(auditorium, tomorrow(14), tomorrow(16), "Acme all-hands"))
    page = new_page()
    sign_in(page, "sam@campus.test", "pw-Sam")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Staff console").click()
    page.get_by_role("navigation", name="Staff console").get_by_role(
        "link", name="Approvals"
    ).click()
    assert "1 request awaiting approval." in page.get_by_role("main").inner_text()
    shoot(page, "approvals")
    page.get_by_role("button", name=re.compile("^Approve")).click()
    assert "Approved: Auditorium" in page.get_by_role("status").inner_text()
    assert page.get_by_text("No request awaits approval.").is_visible()
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("confirmed", sam)
    page.get_by_role("link", name="Today's bookings").click()
    shoot(page, "today")


def test_the_pages_render_in_french_and_in_english(new_page, bob, rooms):
    page = new_page()
    sign_in(page, "bob@acme.test", "pw-Bob")
    search_tomorrow(page, features=())
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"

    def heading_date(language):
        with translation.override(language):
            return formats.date_format(tomorrow(10), "l j F Y")

    page.get_by_role("button", name="Français").click()
    page.wait_for_function("document.documentElement.lang === 'fr'")
    assert heading_date("fr") in page.get_by_role("main").inner_text()
    assert page.get_by_role("button", name="English").is_visible()
    shoot(page, "book-fr")

    page.get_by_role("button", name="English").click()
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert heading_date("en") in page.get_by_role("main").inner_text()
    shoot(page, "book-en")


def test_a_phone_books_without_scrolling_sideways(new_page, bob, rooms):
    page = new_page(viewport=PHONE)
    page.goto("/accounts/login/")
    assert_no_sideways_scroll(page)
    shoot(page, "phone-login")
    sign_in(page, "bob@acme.test", "pw-Bob")
    assert_no_sideways_scroll(page)
    search_tomorrow(page)
    assert_no_sideways_scroll(page)
    shoot(page, "phone-book-results")
    page.get_by_role("button", name="Book Salle Loire").click()
    page.wait_for_url(re.compile(r"/bookings/"))
    assert_no_sideways_scroll(page)
    shoot(page, "phone-my-bookings")
    page.goto("/book/day/?date=" + tomorrow(10).date().isoformat())
    assert_no_sideways_scroll(page)
    shoot(page, "phone-day-grid")
