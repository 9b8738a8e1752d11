"""Secrets stay secret: API tokens, badge UIDs and passwords never reach a log record (even at
DEBUG, SQL included) nor a response, except the token shown once when it is created; and
guessing them is slowed down (an account locked after 10 failed sign-ins, 429 for token
guessing) without refusing anyone's valid credential for someone else's failures.
"""

import logging

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from campus.models import ApiToken

JSON = "application/json"
UID = "04:A1:B2:C3:D4:E5"
WRONG_PASSWORD = "Not-B0b's-password"
MADE_UP_TOKEN = "tc_" + "x" * 43


@pytest.fixture
def everything_logged(caplog):
    """Every record at DEBUG, the SQL of each query too (django.db.backends logs it only when
    the connection is in debug mode)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    with CaptureQueriesContext(connection):
        yield caplog


def logged_text(caplog) -> str:
    """What a log handler could write: messages, arguments, extras and tracebacks."""
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.__dict__))
    return "\n".join(parts)


def variants(uid: str) -> list[str]:
    digits = uid.replace(":", "")
    return [uid, uid.lower(), digits.upper(), digits.lower()]


def test_tokens_uids_and_passwords_never_reach_the_logs_or_the_answers(bob, sam, everything_logged):
    answers = []

    # A token created through the API is shown once, in the answer that creates it.
    first = ApiToken.issue(bob, "first")[1]
    created = Client(headers={"Authorization": f"Bearer {first}"}).post(
        "/api/v1/me/tokens", {"name": "laptop"}, content_type=JSON
    )
    assert created.status_code == 201, created.content
    token = created.json()["token"]
    assert token.startswith("tc_") and len(token) > 20

    # The token at work, listed, and a made-up one refused.
    with_token = Client(headers={"Authorization": f"Bearer {token}"})
    answers.append(with_token.get("/api/v1/me"))
    answers.append(with_token.get("/api/v1/me/tokens"))
    refused = Client(headers={"Authorization": f"Bearer {MADE_UP_TOKEN}"}).get("/api/v1/me")
    assert refused.status_code == 401
    answers.append(refused)

    # A badge registered by staff, by its UID.
    sam_token = ApiToken.issue(sam, "badges")[1]
    registered = Client(headers={"Authorization": f"Bearer {sam_token}"}).post(
        "/api/v1/credentials", {"uid": UID, "holder_id": bob.pk}, content_type=JSON
    )
    assert registered.status_code == 201, registered.content
    answers.append(registered)

    # A sign-in with a wrong password.
    signed_in = Client().post(
        "/accounts/login/", {"username": "bob@acme.test", "password": WRONG_PASSWORD}
    )
    assert signed_in.status_code == 200 and not signed_in.wsgi_request.user.is_authenticated
    answers.append(signed_in)

    logs = logged_text(everything_logged)
    assert any("SELECT" in r.getMessage() for r in everything_logged.records), "SQL not captured"
    bodies = "\n".join(a.content.decode() for a in answers)
    for secret in [token, first, sam_token, MADE_UP_TOKEN, WRONG_PASSWORD, *variants(UID)]:
        assert secret not in logs, f"{secret!r} reached the logs"
        assert secret not in bodies, f"{secret!r} reached an answer"
    assert token[:10] in [t["hint"] for t in answers[1].json()["items"]]  # known by its hint only


def sign_in(email: str, password: str, ip: str = "198.51.100.1") -> bool:
    response = Client(REMOTE_ADDR=ip).post(
        "/accounts/login/", {"username": email, "password": password}
    )
    return response.status_code == 302


def test_failed_sign_ins_on_other_accounts_never_refuse_the_right_password(bob, alice):
    # One office, one public address: someone mistypes, someone guesses other accounts.
    for n in range(30):
        assert not sign_in(f"guess{n}@acme.test", "wrong")
    assert sign_in("alice@acme.test", "pw-Alice")


def test_the_guessed_account_is_locked_wherever_the_right_password_comes_from(bob, alice):
    for _ in range(10):
        assert not sign_in("bob@acme.test", "wrong", ip="203.0.113.66")
    assert not sign_in("bob@acme.test", "pw-Bob")
    assert not sign_in("bob@acme.test", "pw-Bob", ip="192.0.2.7")
    assert sign_in("alice@acme.test", "pw-Alice", ip="203.0.113.66")
    cache.clear()  # the 15 minutes are over
    assert sign_in("bob@acme.test", "pw-Bob")


def test_a_real_token_passes_from_an_address_that_guessed_many(bob):
    _token, real = ApiToken.issue(bob, "real")
    for n in range(30):
        guess = Client(headers={"Authorization": f"Bearer tc_guess{n}"}).get("/api/v1/me")
        assert guess.status_code == 401
    guess = Client(headers={"Authorization": "Bearer tc_guess-again"}).get("/api/v1/me")
    assert guess.status_code == 429
    assert guess.json()["code"] == "too_many_attempts"
    response = Client(headers={"Authorization": f"Bearer {real}"}).get("/api/v1/me")
    assert response.status_code == 200


def test_guesses_at_one_token_prefix_are_answered_429_from_any_address(bob):
    _token, real = ApiToken.issue(bob, "real")
    for n in range(30):
        guess = Client(
            headers={"Authorization": f"Bearer {real[:10]}{n:033d}"}, REMOTE_ADDR=f"192.0.2.{n}"
        )
        assert guess.get("/api/v1/me").status_code == 401
    guess = Client(headers={"Authorization": f"Bearer {real[:10]}x"}, REMOTE_ADDR="192.0.2.99")
    assert guess.get("/api/v1/me").status_code == 429
    assert Client(headers={"Authorization": f"Bearer {real}"}).get("/api/v1/me").status_code == 200


def test_the_sign_in_page_says_the_account_waits_whether_or_not_it_exists(bob):
    def answer(email: str, password: str) -> str:
        page = Client().post("/accounts/login/", {"username": email, "password": password})
        assert page.status_code == 200
        return page.content.decode()

    for email in ["bob@acme.test", "nobody@acme.test"]:
        for _ in range(9):
            assert "Too many failed sign-ins" not in answer(email, "wrong")
        assert "Too many failed sign-ins with this e-mail address" in answer(email, "wrong")
    assert "Too many failed sign-ins" in answer("bob@acme.test", "pw-Bob")
