"""The portal's shell: home, sign-in, sign-out, password reset, languages, error pages."""

import re

import pytest
from django.core import mail

from tests.portal.conftest import signed_in

PORTAL_PAGES = ["/book/", "/book/day/", "/bookings/", "/staff/approvals/", "/staff/today/"]


def test_an_anonymous_visitor_gets_a_welcome_with_the_sign_in_link(client):
    response = client.get("/")
    assert response.status_code == 200
    assert 'href="/accounts/login/"' in response.content.decode()


@pytest.mark.parametrize("url", PORTAL_PAGES)
def test_every_portal_page_asks_to_sign_in_first(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_the_back_office_stays_at_admin(client):
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_people_sign_in_with_their_email_and_password(client, bob):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert 'type="email"' in page.content.decode()
    response = client.post("/accounts/login/", {"username": "BOB@acme.test", "password": "pw-Bob"})
    assert response.status_code == 302 and response["Location"] == "/"
    home = client.get("/").content.decode()
    assert "Hello Bob" in home and "My bookings" in home


def test_a_wrong_password_is_refused_with_a_message(client, bob):
    response = client.post("/accounts/login/", {"username": "bob@acme.test", "password": "nope"})
    assert response.status_code == 200
    body = response.content.decode()
    assert 'role="alert"' in body and "correct" in body
    assert 'value="bob@acme.test"' in body


def test_signing_out_is_a_post(bob):
    client = signed_in(bob)
    assert client.get("/accounts/logout/").status_code == 405
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert client.get("/bookings/").status_code == 302


def test_a_forgotten_password_is_reset_by_email(client, bob):
    response = client.post("/accounts/password-reset/", {"email": "bob@acme.test"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password-reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["bob@acme.test"]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "new_password1" in form.content.decode()
    response = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-Fresh-pass-2026", "new_password2": "a-Fresh-pass-2026"},
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/reset/done/"
    bob.refresh_from_db()
    assert bob.check_password("a-Fresh-pass-2026")


def test_an_unknown_email_gets_the_same_answer_and_no_mail(client, bob):
    response = client.post("/accounts/password-reset/", {"email": "nobody@acme.test"})
    assert response.status_code == 302 and mail.outbox == []


def test_the_navigation_depends_on_roles(bob, sam):
    tenant_nav = signed_in(bob).get("/").content.decode()
    assert 'href="/book/"' in tenant_nav and 'href="/bookings/"' in tenant_nav
    assert 'href="/staff/approvals/"' not in tenant_nav and 'href="/admin/"' not in tenant_nav
    staff_nav = signed_in(sam).get("/").content.decode()
    assert 'href="/staff/approvals/"' in staff_nav and 'href="/staff/today/"' in staff_nav


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fr", ('lang="fr"', "Mot de passe")), ("en", ('lang="en"', "Password"))],
)
def test_the_portal_speaks_french_and_english(client, language, expected):
    client.cookies["django_language"] = language
    body = client.get("/accounts/login/").content.decode()
    for text in expected:
        assert text in body


def test_the_language_switch_sets_the_cookie_and_returns(client):
    response = client.post("/i18n/setlang/", {"language": "fr", "next": "/accounts/login/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.cookies["django_language"].value == "fr"
    assert 'lang="fr"' in client.get("/accounts/login/").content.decode()


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("url", ["/", *PORTAL_PAGES])
def test_every_page_renders_in_both_languages(sam, url, language):
    client = signed_in(sam)
    client.cookies["django_language"] = language
    response = client.get(url)
    assert response.status_code == 200
    assert f'<html lang="{language}">' in response.content.decode()


def test_an_unknown_page_is_a_404_in_the_portal_layout(client, bob):
    client.force_login(bob)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()
