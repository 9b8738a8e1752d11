"""The staff console in a real browser (Debian's Chromium through Playwright, like
test_browser.py): lockdown with its confirmation over the real broker, a CSV import with a bad
row, the doors page updating itself, and an axe-core check of the main pages (no serious or
critical violation). Screenshots go to test-artifacts/."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from access.models import Controller, SiteMode
from bookings.engine import Slot, book
from campus.models import Person, Tenant
from tests.access import broker
from tests.access import conftest as access_fixtures
from tests.access.broker import retained
from tests.labs import conftest as labs
from tests.portal.conftest import tomorrow
from tests.portal.test_browser import (
    PHONE,
    assert_every_control_is_labelled,
    assert_no_sideways_scroll,
    browser,
    new_page,
    shoot,
    sign_in,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# fixtures from the other test folders
controllers, doors = access_fixtures.controllers, access_fixtures.doors
broker_root = broker.broker_root
scope, equipment_policy, lab_policy = labs.scope, labs.equipment_policy, labs.lab_policy
_fixtures = (browser, new_page)

SERIOUS = ("serious", "critical")


def assert_accessible(page, name: str):
    """axe-core (bundled by axe-playwright-python: no download) finds nothing serious."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in SERIOUS]
    assert not bad, f"{name}: " + "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:5]}"
        for v in bad
    )


def staff_link(page, name: str):
    page.get_by_role("navigation", name="Staff console").get_by_role("link", name=name).click()


@pytest.fixture
def lived_in(bob, rooms, scope, doors, sam):
    """A booking, a machine, doors with one controller online and a little access log."""
    Controller.objects.filter(pk="ctrl-a").update(
        online=True, last_seen=timezone.now(), firmware="door-1.4.2", acl_version=7
    )
    book(bob, Slot(rooms["loire"], tomorrow(10), tomorrow(11), "Weekly review"))
    return bob


def test_the_main_pages_have_no_serious_accessibility_violations(new_page, lived_in, sam):
    page = new_page()
    page.goto("/")
    assert_accessible(page, "home (signed out)")
    sign_in(page, "bob@acme.test", "pw-Bob")
    assert_accessible(page, "home")
    page.goto("/book/")
    assert_accessible(page, "book a room")
    page.goto(f"/book/?date={tomorrow(10).date().isoformat()}&start=14:00&end=15:00&capacity=2")
    page.get_by_role("heading", name=re.compile("Free rooms")).wait_for()
    assert_accessible(page, "results")
    page.goto("/bookings/")
    assert_accessible(page, "my bookings")

    page = new_page()
    sign_in(page, "sam@campus.test", "pw-Sam")
    for url, name in [
        ("/staff/", "console"),
        ("/staff/approvals/", "approvals"),
        ("/staff/today/", "today"),
        ("/staff/equipment/", "equipment"),
        ("/staff/qualifications/", "qualifications"),
        ("/staff/incidents/", "incidents"),
        ("/staff/doors/", "doors"),
        ("/staff/lockdown/", "lockdown"),
        ("/staff/access-log/?result=grant", "access-log"),
        ("/staff/occupancy/", "occupancy"),
        (f"/staff/reports/?month={timezone.localdate():%Y-%m}", "reports"),
        ("/staff/import/", "import"),
    ]:
        page.goto(url)
        assert_accessible(page, name)
        assert_every_control_is_labelled(page)
        shoot(page, f"staff-{name}")
    page.goto("/staff/equipment/")
    page.get_by_role("link", name="Oscilloscope 1").click()
    assert_accessible(page, "equipment detail")
    shoot(page, "staff-equipment-detail")


def test_staff_lock_the_site_down_and_lift_it(new_page, sam, broker_root):
    page = new_page()
    sign_in(page, "sam@campus.test", "pw-Sam")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Staff console").click()
    staff_link(page, "Lockdown")
    page.get_by_role("heading", name="Lock the whole site down").wait_for()

    # Without the word, nothing happens and the field says why.
    page.get_by_label("Type LOCKDOWN to confirm").fill("yes")
    page.get_by_role("button", name="Lock the site down").click()
    assert (
        "Type the word LOCKDOWN, in capitals, to confirm." in page.get_by_role("alert").inner_text()
    )
    assert page.get_by_label("Type LOCKDOWN to confirm").get_attribute("aria-invalid") == "true"
    assert not SiteMode.current().lockdown
    shoot(page, "lockdown-unconfirmed")

    page.get_by_label("Type LOCKDOWN to confirm").fill("LOCKDOWN")
    page.get_by_label("Why (kept in the audit log)").fill("Intruder drill")
    page.get_by_role("button", name="Lock the site down").click()
    assert "Site lockdown is ON" in page.get_by_role("status").inner_text()
    assert page.get_by_text("Lockdown is ON.").is_visible()
    shoot(page, "lockdown-on")
    mode = SiteMode.current()
    assert (mode.lockdown, mode.changed_by) == (True, sam)
    [message] = [m for m in retained(broker_root) if m.topic.endswith("/site/mode")]
    assert b'"mode":"lockdown"' in message.payload

    page.get_by_label("Type LOCKDOWN to confirm").fill("LOCKDOWN")
    page.get_by_role("button", name="Lift the lockdown").click()
    assert "Site lockdown lifted" in page.get_by_role("status").inner_text()
    assert not SiteMode.current().lockdown
    [message] = [m for m in retained(broker_root) if m.topic.endswith("/site/mode")]
    assert b'"mode":"normal"' in message.payload
    shoot(page, "lockdown-lifted")


CSV_WITH_ONE_BAD_ROW = (
    "tenant;tier;contract_start;email;first_name;last_name;tenant_admin\n"
    "Initech;member;2026-01-01;peter@initech.test;Peter;Gibbons;yes\n"
    "Initech;;;milton@initech.test;Milton;;no\n"
    "Initech;;;samir@initech.test;Samir;Nagheenanajar;no\n"
)


def test_staff_import_a_csv_with_a_bad_row_and_nothing_is_imported(new_page, sam):
    page = new_page(viewport=PHONE)
    sign_in(page, "sam@campus.test", "pw-Sam")
    page.goto("/staff/import/")
    page.get_by_label("CSV file").set_input_files(
        files=[
            {"name": "people.csv", "mimeType": "text/csv", "buffer": CSV_WITH_ONE_BAD_ROW.encode()}
        ]
    )
    page.get_by_role("button", name="Import it if every row is valid").click()
    alert = page.get_by_role("alert")
    assert "1 error: nothing was imported." in alert.inner_text()
    row = alert.get_by_role("row").nth(1)
    assert row.get_by_role("cell").all_inner_texts() == [
        "3",
        "last_name",
        "This field cannot be blank.",
    ]
    assert page.evaluate("document.activeElement.id") == "import-result"
    assert_no_sideways_scroll(page)
    shoot(page, "import-bad-row")
    assert not Tenant.objects.filter(name="Initech").exists()
    assert not Person.objects.filter(email__endswith="@initech.test").exists()

    fixed = CSV_WITH_ONE_BAD_ROW.replace(";Milton;;", ";Milton;Waddams;")
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "people.csv", "mimeType": "text/csv", "buffer": fixed.encode()}]
    )
    page.get_by_role("button", name="Check the file (nothing is saved)").click()
    assert "3 person(s), 0 badge(s) would be created" in page.get_by_role("main").inner_text()
    assert not Person.objects.filter(email__endswith="@initech.test").exists()
    page.get_by_role("button", name="Import these 3 row(s) now").click()
    assert "Imported: 1 new tenant(s), 3 person(s)" in page.get_by_role("status").inner_text()
    assert Person.objects.filter(email__endswith="@initech.test").count() == 3
    shoot(page, "import-done")


def test_the_doors_page_updates_itself_and_says_so(new_page, sam, doors):
    Controller.objects.filter(pk="ctrl-a").update(online=True, last_seen=timezone.now())
    page = new_page()
    sign_in(page, "sam@campus.test", "pw-Sam")
    page.goto("/staff/doors/")
    status = page.locator("#c-ctrl-a-status")
    assert status.inner_text() == "Online"
    shoot(page, "doors")
    Controller.objects.filter(pk="ctrl-a").update(last_seen=timezone.now() - timedelta(minutes=5))
    page.wait_for_selector('#c-ctrl-a-status[data-state="offline"]', timeout=12_000)
    assert status.inner_text() == "Offline"
    assert "ctrl-a: Offline" in page.locator("#live-changes").inner_text()
    assert page.locator("#live-changes").get_attribute("aria-live") == "polite"


def test_the_console_fits_a_phone(new_page, lived_in, sam):
    page = new_page(viewport=PHONE)
    sign_in(page, "sam@campus.test", "pw-Sam")
    for url in [
        "/staff/",
        "/staff/doors/",
        "/staff/access-log/",
        "/staff/equipment/",
        f"/staff/reports/?month={timezone.localdate():%Y-%m}",
    ]:
        page.goto(url)
        assert_no_sideways_scroll(page)
    shoot(page, "phone-reports")
    page.goto("/staff/doors/")
    shoot(page, "phone-doors")


def test_the_console_speaks_french(new_page, lived_in, sam):
    page = new_page()
    sign_in(page, "sam@campus.test", "pw-Sam")
    page.goto("/staff/lockdown/")
    page.get_by_role("button", name="Français").click()
    page.wait_for_function("document.documentElement.lang === 'fr'")
    assert page.get_by_role("navigation", name="Menu principal").is_visible()
    page.goto(f"/staff/reports/?month={timezone.localdate():%Y-%m}")
    assert_accessible(page, "reports (fr)")
    shoot(page, "reports-fr")
