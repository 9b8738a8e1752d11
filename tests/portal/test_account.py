"""My account: the calendar feed page (the secret URL answers text/calendar, a reset
revokes it) and personal API tokens (shown once, listed by hint, revoked)."""

from django.test import Client

from bookings.models import PersonFeed
from campus.models import ApiToken
from tests.portal.conftest import signed_in


def test_the_account_page_links_to_each_part(bob):
    body = signed_in(bob).get("/account/").content.decode()
    for href in ("/waitlist/", "/account/calendar/", "/account/tokens/"):
        assert f'href="{href}"' in body
    assert 'aria-current="page">My account<' in body


def test_the_pages_need_a_sign_in(db):
    for url in ("/account/", "/account/calendar/", "/account/tokens/", "/waitlist/"):
        response = Client().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# ------------------------------------------------------------------ calendar feed


def test_the_feed_page_shows_my_secret_url_that_answers_a_calendar(bob, bobs_booking, settings):
    settings.SITE_URL = "https://campus.example"
    client = signed_in(bob)
    body = client.get("/account/calendar/").content.decode()
    feed = PersonFeed.objects.get(person=bob)
    url = f"https://campus.example/calendar/person/{feed.token}.ics"
    assert f'value="{url}"' in body and 'data-copy="feed-url"' in body
    for app in ("Outlook", "Google Calendar", "Thunderbird"):
        assert app in body
    answer = Client().get(f"/calendar/person/{feed.token}.ics")
    assert answer["Content-Type"].startswith("text/calendar")
    assert "Bob's review" in answer.content.decode()


def test_resetting_the_feed_revokes_the_old_url(bob):
    client = signed_in(bob)
    client.get("/account/calendar/")
    old = PersonFeed.objects.get(person=bob).token
    response = client.post("/account/calendar/", follow=True)
    new = PersonFeed.objects.get(person=bob).token
    assert new != old and new in response.content.decode()
    assert "the old link no longer works" in response.content.decode()
    assert Client().get(f"/calendar/person/{old}.ics").status_code == 404


def test_the_reset_needs_the_csrf_token(bob):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(bob)
    strict.get("/account/calendar/")
    old = PersonFeed.objects.get(person=bob).token
    assert strict.post("/account/calendar/").status_code == 403
    assert PersonFeed.objects.get(person=bob).token == old


# ------------------------------------------------------------------ API tokens


def test_a_new_token_is_shown_once_and_works(bob):
    client = signed_in(bob)
    response = client.post("/account/tokens/", {"name": "Accounting export"})
    assert response["Cache-Control"] == "no-store"
    plaintext = response.context["plaintext"]
    token = ApiToken.objects.get(person=bob)
    assert plaintext.startswith(token.hint)
    assert (
        plaintext in response.content.decode()
        and "shown only this once" in response.content.decode()
    )
    again = client.get("/account/tokens/").content.decode()
    assert plaintext not in again
    assert "Accounting export" in again and f"{token.hint}…" in again and "never" in again
    assert ApiToken.authenticate(plaintext) == bob
    me = Client(headers={"Authorization": f"Bearer {plaintext}"}).get("/api/v1/me")
    assert me.json()["email"] == "bob@acme.test"


def test_a_token_needs_a_name_and_keeps_what_was_typed(bob):
    response = signed_in(bob).post("/account/tokens/", {"name": ""})
    assert response.status_code == 422
    assert 'aria-describedby="id_name_helptext id_name_error"' in response.content.decode()
    long = "x" * 81
    response = signed_in(bob).post("/account/tokens/", {"name": long})
    assert response.status_code == 422 and f'value="{long}"' in response.content.decode()
    assert not ApiToken.objects.exists()


def test_revoking_a_token_stops_it_and_only_mine(bob, charlie):
    token, plaintext = ApiToken.issue(bob, "script")
    assert signed_in(charlie).post(f"/account/tokens/{token.pk}/revoke/").status_code == 404
    response = signed_in(bob).post(f"/account/tokens/{token.pk}/revoke/", follow=True)
    assert (
        "no longer works" in response.content.decode() and "revoked on" in response.content.decode()
    )
    assert ApiToken.authenticate(plaintext) is None
    assert signed_in(bob).get(f"/account/tokens/{token.pk}/revoke/").status_code == 405
