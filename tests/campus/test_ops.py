"""Operations: probes, metrics, security headers, production checks, brute-force limits."""

import json
import logging
import os
import subprocess
import sys

import pytest
from django.core.cache import cache
from django.test import Client

from campus.logs import JsonFormatter
from campus.settings import BASE_DIR


@pytest.fixture(autouse=True)
def _clear_throttles():
    cache.clear()
    yield
    cache.clear()


def test_healthz_answers_without_touching_anything():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_the_database(db, settings):
    settings.MQTT_URL = ""
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
    assert response.json()["broker"] == "not configured"


@pytest.mark.mqtt
def test_readyz_checks_the_broker(db, settings):
    from tests.conftest import MQTT_TEST_URL

    settings.MQTT_URL = MQTT_TEST_URL
    assert Client().get("/readyz").json()["broker"] == "ok"
    settings.MQTT_URL = "mqtt://127.0.0.1:1"  # nobody listens there
    response = Client().get("/readyz")
    assert response.status_code == 503 and response.json()["broker"].startswith("error")


def test_metrics_count_requests_and_bookings(db):
    Client().get("/healthz")
    body = Client().get("/metrics").content.decode()
    assert "technocampus_http_requests_total" in body
    assert "technocampus_bookings_created_total" in body
    assert "technocampus_access_decision_seconds_bucket" in body


def test_pages_carry_a_content_security_policy(db):
    response = Client().get("/admin/login/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "x" * 60 + "Yz!9",
        "CREDENTIAL_KEY": "k",
        "ALLOWED_HOSTS": "technocampus.example.org",
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "SECRET_KEY_FILE")}
    env.update(DEBUG="0", VAR_DIR=str(tmp_path), ALLOWED_HOSTS="x")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    (tmp_path / "key").write_text("from-a-file\n")
    env = {**os.environ, "SECRET_KEY_FILE": str(tmp_path / "key"), "VAR_DIR": str(tmp_path)}
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip().splitlines()[-1] == "from-a-file"


def test_sign_in_is_refused_after_ten_failures_even_with_the_right_password(bob):
    client = Client()
    for _ in range(10):
        assert not client.login(email="bob@acme.test", password="wrong")
    assert not client.login(email="bob@acme.test", password="pw-Bob")
    cache.clear()
    assert client.login(email="bob@acme.test", password="pw-Bob")


def test_guessing_tokens_is_answered_429_after_thirty_tries(bob):
    for _ in range(30):
        response = Client(headers={"Authorization": "Bearer tc_guess"}).get("/api/v1/me")
        assert response.status_code == 401
    response = Client(headers={"Authorization": "Bearer tc_guess"}).get("/api/v1/me")
    assert response.status_code == 429
    assert response.json()["code"] == "too_many_attempts"


def test_json_logs_are_one_object_per_line():
    record = logging.LogRecord("campus", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "hello world" and entry["level"] == "INFO"
