"""Invitations: whoever adds a person (API, company page, CSV import, admin), the person gets
an e-mail in their language with a link to choose a password, valid 7 days and once; their
tenant admin and staff can send it again; "Forgotten password" works for them too."""

import logging
import re
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from access import onboarding
from campus import invitations
from campus.models import Person
from tests.conftest import api_client
from tests.portal.conftest import signed_in

JSON = "application/json"
LINK = re.compile(r"https?://[^/\s]+(/accounts/invitation/[^/\s]+/[^/\s]+/)")
RESET_LINK = re.compile(r"https?://[^/\s]+(/accounts/reset/[^/\s]+/[^/\s]+/)")


def dana(**extra):
    return {"email": "Dana@Acme.test", "first_name": "Dana", "last_name": "Doe", **extra}


def add_by_api(client, django_capture_on_commit_callbacks, **extra):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/people", dana(**extra), content_type=JSON)
    assert response.status_code == 201, response.content
    return Person.objects.get(pk=response.json()["id"])


def link_in(message) -> str:
    found = LINK.search(message.body)
    assert found, message.body
    return found.group(1)


def choose_password(client: Client, link: str, password="A long enough secret 42"):
    """Follow the e-mailed link, then submit the form it leads to."""
    landing = client.get(link)
    assert landing.status_code == 302, landing.content[:500]  # the token moves to the session
    form = client.get(landing["Location"])
    assert form.status_code == 200 and b"new_password1" in form.content
    return client.post(landing["Location"], {"new_password1": password, "new_password2": password})


def test_a_person_added_by_the_api_is_invited_and_can_then_sign_in(
    as_alice, alice, django_capture_on_commit_callbacks
):
    person = add_by_api(as_alice, django_capture_on_commit_callbacks, language="en")
    assert not person.has_usable_password()
    [message] = mail.outbox
    assert message.to == ["dana@acme.test"]
    assert message.subject == "Technocampus: your account is ready, choose your password"
    assert "Alice Test (Acme) added you." in message.body
    assert "valid for 7 days" in message.body

    client = Client()
    saved = choose_password(client, link_in(message))
    assert saved.status_code == 302 and saved["Location"] == "/accounts/invitation/done/"
    assert "Password saved" in client.get(saved["Location"]).content.decode()
    signed = Client().post(
        "/accounts/login/", {"username": "dana@acme.test", "password": "A long enough secret 42"}
    )
    assert signed.status_code == 302 and signed["Location"] == "/"


def test_the_invitation_speaks_the_persons_language(
    as_sam, acme, django_capture_on_commit_callbacks
):
    add_by_api(as_sam, django_capture_on_commit_callbacks, tenant_id=acme.pk, language="fr")
    [message] = mail.outbox
    assert (
        message.subject
        == "Technocampus\u202f: votre compte est prêt, choisissez votre mot de passe"
    )
    assert "Bonjour Dana Doe" in message.body and "valable 7 jours" in message.body
    assert "Il a été créé par Sam Test." in message.body  # staff have no tenant to name


def test_a_used_link_stops_working(as_alice, django_capture_on_commit_callbacks):
    add_by_api(as_alice, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0])
    choose_password(Client(), link)
    again = Client().get(link)
    assert again.status_code == 200
    assert "This invitation link has expired" in again.content.decode()


def test_a_link_works_for_7_days_and_is_refused_with_a_clear_page_after(
    as_alice, django_capture_on_commit_callbacks, monkeypatch
):
    add_by_api(as_alice, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0])
    sent = datetime.now()
    monkeypatch.setattr(invitations.tokens, "_now", lambda: sent + timedelta(days=6, hours=23))
    assert Client().get(link).status_code == 302  # still valid: on to the form
    monkeypatch.setattr(invitations.tokens, "_now", lambda: sent + timedelta(days=8))
    page = Client().get(link)
    body = page.content.decode()
    assert page.status_code == 200 and "new_password1" not in body
    assert "This invitation link has expired (it is valid for 7 days)" in body
    assert 'href="/accounts/password-reset/"' in body


def test_an_invitation_is_no_reset_link_and_a_reset_link_no_invitation(bob):
    uid = urlsafe_base64_encode(force_bytes(bob.pk))
    reset = default_token_generator.make_token(bob)
    invitation = invitations.tokens.make_token(bob)
    assert not invitations.tokens.check_token(bob, reset)
    assert not default_token_generator.check_token(bob, invitation)
    page = Client().get(f"/accounts/invitation/{uid}/{reset}/")
    assert "This invitation link has expired" in page.content.decode()


def test_an_inactive_persons_link_does_not_work(as_alice, django_capture_on_commit_callbacks):
    person = add_by_api(as_alice, django_capture_on_commit_callbacks)
    link = link_in(mail.outbox[0])
    Person.objects.filter(pk=person.pk).update(is_active=False)
    assert "This invitation link has expired" in Client().get(link).content.decode()


def test_an_inactive_person_is_not_invited(as_sam, acme, django_capture_on_commit_callbacks):
    add_by_api(as_sam, django_capture_on_commit_callbacks, tenant_id=acme.pk, is_active=False)
    assert mail.outbox == []


def test_the_reset_form_works_for_an_invited_person(as_alice, django_capture_on_commit_callbacks):
    add_by_api(as_alice, django_capture_on_commit_callbacks)
    mail.outbox.clear()
    response = Client().post("/accounts/password-reset/", {"email": "DANA@acme.test"})
    assert response.status_code == 302
    [message] = mail.outbox
    assert message.to == ["dana@acme.test"]
    link = RESET_LINK.search(message.body).group(1)
    client = Client()
    landing = client.get(link)
    password = "Another long secret 42"
    done = client.post(landing["Location"], {"new_password1": password, "new_password2": password})
    assert done.status_code == 302
    assert Client().login(username="dana@acme.test", password=password)


def test_the_reset_form_still_skips_inactive_people(bob):
    Person.objects.filter(pk=bob.pk).update(is_active=False)
    Client().post("/accounts/password-reset/", {"email": "bob@acme.test"})
    assert mail.outbox == []


def test_a_failure_to_send_is_logged_and_the_person_is_still_added(
    as_alice, django_capture_on_commit_callbacks, caplog
):
    with (
        mock.patch("campus.invitations.EmailMessage.send", side_effect=OSError("SMTP down")),
        caplog.at_level(logging.ERROR, logger="campus.invitations"),
    ):
        person = add_by_api(as_alice, django_capture_on_commit_callbacks)
    assert Person.objects.filter(pk=person.pk).exists()
    assert "could not send the invitation" in caplog.text


def test_nothing_is_sent_before_the_commit(as_alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        as_alice.post("/api/v1/people", dana(), content_type=JSON)
    assert len(callbacks) == 1 and mail.outbox == []


# ------------------------------------------------------------------ resend


def test_the_tenant_admin_and_staff_send_the_invitation_again(
    as_alice, as_sam, as_bob, django_capture_on_commit_callbacks
):
    person = add_by_api(as_alice, django_capture_on_commit_callbacks)
    url = f"/api/v1/people/{person.pk}/invitation"
    for client in (as_alice, as_sam):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url)
        assert response.status_code == 202, response.content
        assert response.json()["email"] == "dana@acme.test"
    assert len(mail.outbox) == 3
    refused = as_bob.post(url)
    assert (refused.status_code, refused.json()["code"]) == (403, "staff_only")
    choose_password(Client(), link_in(mail.outbox[-1]))
    done = as_alice.post(url)
    assert (done.status_code, done.json()["code"]) == (409, "already_signed_up")


def test_another_tenants_admin_cannot_resend(
    as_charlie, alice, charlie, django_capture_on_commit_callbacks
):
    person = add_by_api(api_client(alice), django_capture_on_commit_callbacks)
    charlie.is_tenant_admin = True
    charlie.save()
    assert as_charlie.post(f"/api/v1/people/{person.pk}/invitation").status_code == 404


# ------------------------------------------------------------------ the other ways in


def test_the_company_page_invites_a_colleague_and_sends_it_again(
    alice, django_capture_on_commit_callbacks
):
    client = signed_in(alice)
    data = {
        "action": "add-person",
        "person-first_name": "Dana",
        "person-last_name": "Doe",
        "person-email": "dana@acme.test",
        "person-language": "en",
    }
    with django_capture_on_commit_callbacks(execute=True):
        added = client.post("/company/people/", data, follow=True)
    body = added.content.decode()
    assert "an e-mail to dana@acme.test invites them to choose a password" in body
    assert "invited, no password yet" in body
    dana_ = Person.objects.get(email="dana@acme.test")
    assert f'action="/company/people/{dana_.pk}/invitation/"' in body
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(f"/company/people/{dana_.pk}/invitation/", follow=True)
    assert "The invitation was sent again to dana@acme.test" in again.content.decode()
    assert [m.to for m in mail.outbox] == [["dana@acme.test"], ["dana@acme.test"]]
    choose_password(Client(), link_in(mail.outbox[1]))
    done = client.post(f"/company/people/{dana_.pk}/invitation/", follow=True)
    assert "has already chosen a password" in done.content.decode()
    assert len(mail.outbox) == 2


def test_a_csv_import_invites_each_person_once_committed(sam, django_capture_on_commit_callbacks):
    data = (
        b"tenant;tier;contract_start;email;first_name;last_name;language\n"
        b"Initech;member;2026-01-01;peter@initech.test;Peter;Gibbons;en\n"
        b"Initech;;;milton@initech.test;Milton;Waddams;fr\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        dry = onboarding.import_people(data, by=sam, commit=False)
    assert dry.ok and mail.outbox == []  # a dry run rolls back: nobody to invite
    with django_capture_on_commit_callbacks(execute=True):
        done = onboarding.import_people(data, by=sam, commit=True)
    assert done.committed
    subjects = {m.to[0]: m.subject.split(" ")[1] for m in mail.outbox}
    assert subjects == {"peter@initech.test": "your", "milton@initech.test": "votre"}
    choose_password(Client(), link_in(mail.outbox[0]))


def test_staff_add_a_person_without_a_password_in_the_admin_and_resend_it(
    sam, acme, django_capture_on_commit_callbacks
):
    client = signed_in(sam)
    data = {
        "email": "dana@acme.test",
        "first_name": "Dana",
        "last_name": "Doe",
        "tenant": acme.pk,
        "language": "en",
        "usable_password": "false",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/campus/person/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    person = Person.objects.get(email="dana@acme.test")
    assert not person.has_usable_password()
    [message] = mail.outbox
    assert "Sam Test added you." in message.body
    action = {"action": "send_invitation", "_selected_action": [person.pk]}
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/campus/person/", action)
    assert len(mail.outbox) == 2
    choose_password(Client(), link_in(mail.outbox[1]))


def test_a_person_added_with_a_password_in_the_admin_is_not_invited(
    sam, acme, django_capture_on_commit_callbacks
):
    data = {
        "email": "dana@acme.test",
        "first_name": "Dana",
        "last_name": "Doe",
        "tenant": acme.pk,
        "language": "en",
        "usable_password": "true",
        "password1": "A long enough secret 42",
        "password2": "A long enough secret 42",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(sam).post("/admin/campus/person/add/", data)
    assert response.status_code == 302
    assert mail.outbox == []


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_set_password_page_speaks_both_languages(
    as_alice, django_capture_on_commit_callbacks, language
):
    add_by_api(as_alice, django_capture_on_commit_callbacks)
    client = Client()
    client.cookies["django_language"] = language
    landing = client.get(link_in(mail.outbox[0]))
    body = client.get(landing["Location"]).content.decode()
    expected = {"fr": "Choisissez votre mot de passe", "en": "Choose your password"}[language]
    assert f"<h1>{expected}</h1>" in body
