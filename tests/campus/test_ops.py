"""Operations: probes, metrics, security headers, production checks, brute-force limits."""

import ipaddress
import json
import logging
import os
import subprocess
import sys
import threading

import pytest
from django.core.cache import cache, caches
from django.db import connection
from django.http import HttpResponse
from django.test import Client, RequestFactory

from campus.auth import SIGN_IN, TOKENS, sign_in_locked
from common.throttle import client_ip
from config.logs import JsonFormatter
from config.ops import ForwardedHeaders
from config.settings import BASE_DIR, cache_from_url
from tests.conftest import database_url


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


# ---------------------------------------------------------------- behind a proxy

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:1::/48")]


def seen_by_the_app(remote_addr: str, **headers) -> dict:
    """REMOTE_ADDR and the forwarding headers as the views see them, after the middleware."""
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr, headers=headers)
    seen = {}

    def view(request):
        seen["client"] = client_ip(request)
        seen["proto"] = request.META.get("HTTP_X_FORWARDED_PROTO")
        seen["forwarded_for"] = request.META.get("HTTP_X_FORWARDED_FOR")
        return HttpResponse()

    ForwardedHeaders(view)(request)
    return seen


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("198.51.100.7", "203.0.113.1", "198.51.100.7"),  # not a proxy: the header is a lie
        ("10.0.0.2", "203.0.113.1", "203.0.113.1"),
        ("10.0.0.2", "6.6.6.6, 203.0.113.1", "203.0.113.1"),  # the client wrote 6.6.6.6
        ("10.0.0.2", "6.6.6.6, 203.0.113.1, 10.0.0.3", "203.0.113.1"),  # two proxies
        ("10.0.0.2", "10.0.0.4, 10.0.0.3", "10.0.0.4"),  # from inside: the first hop
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "6.6.6.6, not-an-address", "10.0.0.2"),
        ("10.0.0.2", "203.0.113.1:4711", "203.0.113.1"),
        ("::ffff:10.0.0.2", "[2001:db8:2::9]:4711", "2001:db8:2::9"),
        ("2001:db8:1::5", "2001:db8:2::9", "2001:db8:2::9"),
    ],
)
def test_the_client_is_the_nearest_address_that_is_not_a_trusted_proxy(
    settings, peer, forwarded_for, client
):
    settings.TRUSTED_PROXIES = PROXIES
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    seen = seen_by_the_app(peer, **headers)
    assert seen["client"] == client
    assert seen["forwarded_for"] is None  # read once, here: nothing after can misread it


def test_nothing_is_forwarded_when_no_proxy_is_trusted(settings):
    settings.TRUSTED_PROXIES = []
    seen = seen_by_the_app(
        "127.0.0.1", **{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
    )
    assert seen == {"client": "127.0.0.1", "proto": None, "forwarded_for": None}


def test_x_forwarded_proto_counts_only_from_a_trusted_proxy(settings):
    settings.TRUSTED_PROXIES = PROXIES
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    https = {"X-Forwarded-Proto": "https"}
    assert Client(REMOTE_ADDR="10.0.0.2", headers=https).get("/healthz").status_code == 200
    response = Client(REMOTE_ADDR="198.51.100.7", headers=https).get("/healthz")
    assert response.status_code == 301 and response["Location"].startswith("https://")


def guess_token(peer: str, forwarded_for: str = "") -> int:
    headers = {"Authorization": "Bearer tc_guess"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return Client(REMOTE_ADDR=peer, headers=headers).get("/api/v1/me").status_code


def test_a_client_rotating_x_forwarded_for_is_still_one_address(settings, bob):
    settings.TRUSTED_PROXIES = PROXIES
    for n in range(30):
        assert guess_token("198.51.100.7", forwarded_for=f"192.0.2.{n}") == 401
    assert guess_token("198.51.100.7", forwarded_for="192.0.2.200") == 429
    cache.clear()
    # Behind the proxy, the hops left of the one the proxy added are the client's own words.
    for n in range(30):
        assert guess_token("10.0.0.2", forwarded_for=f"192.0.2.{n}, 203.0.113.5") == 401
    assert guess_token("10.0.0.2", forwarded_for="192.0.2.200, 203.0.113.5") == 429


def test_clients_behind_one_proxy_are_counted_apart(settings, bob):
    settings.TRUSTED_PROXIES = PROXIES
    for _ in range(30):
        assert guess_token("10.0.0.2", forwarded_for="203.0.113.5") == 401
    assert guess_token("10.0.0.2", forwarded_for="203.0.113.5") == 429
    other = Client(
        REMOTE_ADDR="10.0.0.2",
        headers={"Authorization": "Bearer tc_other-guess", "X-Forwarded-For": "203.0.113.6"},
    )
    assert other.get("/api/v1/me").status_code == 401


# ---------------------------------------------------------------- counters shared by every process


def test_sign_in_failures_counted_by_another_process_lock_the_account_here(
    transactional_db, tmp_path
):
    code = "from campus.auth import SIGN_IN\nfor _ in range(5): SIGN_IN.fail('carol@acme.test')"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(connection.settings_dict),
        "VAR_DIR": str(tmp_path),
    }
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env, check=True
    )
    assert SIGN_IN.count("carol@acme.test") == 5
    for _ in range(5):
        SIGN_IN.fail("carol@acme.test")
    assert sign_in_locked("Carol@acme.test")


def test_failures_counted_at_once_by_many_workers_are_all_counted(transactional_db):
    threads, each = 4, 25
    start = threading.Barrier(threads)

    def worker():
        try:
            start.wait()
            for _ in range(each):
                TOKENS.fail("ip:203.0.113.9")
        finally:
            connection.close()

    running = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    assert TOKENS.count("ip:203.0.113.9") == threads * each


def test_counting_a_failure_keeps_the_end_of_the_window(db):
    def expires():
        with connection.cursor() as cursor:
            cursor.execute("SELECT expires FROM technocampus_cache WHERE cache_key = ':1:k'")
            return cursor.fetchone()[0]

    cache.add("k", 1, 3600)
    before = expires()
    assert cache.incr("k") == 2 and cache.incr("k", 3) == 5
    assert expires() == before and cache.get("k") == 5


@pytest.mark.redis
def test_with_redis_every_client_counts_in_one_place(settings):
    from tests.conftest import REDIS_TEST_URL

    settings.CACHES = {"default": cache_from_url(REDIS_TEST_URL)}
    cache.clear()
    other_worker = caches.create_connection("default")  # a client of its own, like a process
    assert other_worker is not caches["default"]
    for _ in range(5):
        SIGN_IN.fail("carol@acme.test")
    assert other_worker.get(SIGN_IN._key("carol@acme.test")) == 5
    other_worker.incr(SIGN_IN._key("carol@acme.test"), 5)
    assert sign_in_locked("carol@acme.test")
    cache.clear()
