"""The production configuration, as it runs: settings from the environment, gunicorn with
DEBUG=0 serving the portal and its static files, the development server's database
connections, what the Docker build context holds, and the compose file's proxy."""

import contextlib
import gzip
import http.client
import os
import re
import runpy
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from config.settings import BASE_DIR
from tests.conftest import database_url

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "production-test-" + "x" * 50,
    "CREDENTIAL_KEY": "production-test-credential-key",
    "ALLOWED_HOSTS": "127.0.0.1",
}
# What the settings read, so that a test starts from none of them (CI and developers set some).
OURS = re.compile(
    r"(DEBUG|SECRET_KEY|CREDENTIAL_KEY|ALLOWED_HOSTS|DATABASE_URL|DB_.*|CACHE_URL|EMAIL_.*|"
    r"TRUSTED_PROXIES|USE_X_FORWARDED_FOR|STATIC_ROOT|VAR_DIR|MQTT_.*|PROMETHEUS_MULTIPROC_DIR|"
    r"SECURE_.*|WEB_.*)(_FILE)?"
)


def clean_environ(tmp_path, **variables) -> dict:
    env = {k: v for k, v in os.environ.items() if not OURS.fullmatch(k)}
    return {**env, "VAR_DIR": str(tmp_path), **variables}


def load_settings(tmp_path, **variables) -> dict:
    """config/settings.py run afresh in an environment holding only these variables."""
    with mock.patch.dict(os.environ, clean_environ(tmp_path, **variables), clear=True):
        return runpy.run_path(str(BASE_DIR / "config" / "settings.py"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- settings

POSTGRES = "postgres://u@db.example.org:5432/technocampus"


def test_database_connections_close_after_each_request_by_default(tmp_path):
    settings = load_settings(tmp_path, DATABASE_URL=POSTGRES)
    assert settings["DATABASES"]["default"]["CONN_MAX_AGE"] == 0


def test_gunicorn_keeps_database_connections_and_trusts_the_same_proxies(tmp_path):
    env = clean_environ(tmp_path, DATABASE_URL=POSTGRES, TRUSTED_PROXIES="10.0.0.0/8")
    with mock.patch.dict(os.environ, env, clear=True):
        config = runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))
        settings = runpy.run_path(str(BASE_DIR / "config" / "settings.py"))
    assert settings["DATABASES"]["default"]["CONN_MAX_AGE"] == 60
    assert config["forwarded_allow_ips"] == "10.0.0.0/8"
    with mock.patch.dict(os.environ, {**env, "DB_CONN_MAX_AGE": "5"}, clear=True):
        runpy.run_path(str(BASE_DIR / "gunicorn.conf.py"))
        settings = runpy.run_path(str(BASE_DIR / "config" / "settings.py"))
    assert settings["DATABASES"]["default"]["CONN_MAX_AGE"] == 5  # the operator's word wins


FILES = "django.core.mail.backends.filebased.EmailBackend"


@pytest.mark.parametrize(
    ("variables", "backend"),
    [
        ({}, FILES),  # development
        (PRODUCTION, FILES),
        ({**PRODUCTION, "EMAIL_HOST": "smtp.example.org"}, "django.core.mail.backends.smtp."),
    ],
)
def test_e_mails_go_to_files_in_var_mail_unless_an_smtp_host_is_set(tmp_path, variables, backend):
    settings = load_settings(tmp_path, **variables)
    assert settings["EMAIL_BACKEND"].startswith(backend)
    assert settings["EMAIL_FILE_PATH"] == str(tmp_path / "mail")


def test_trusted_proxies_are_addresses_or_networks(tmp_path):
    settings = load_settings(tmp_path, TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7,2001:db8::/32")
    assert [str(n) for n in settings["TRUSTED_PROXIES"]] == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "2001:db8::/32",
    ]
    assert load_settings(tmp_path)["TRUSTED_PROXIES"] == []
    with pytest.raises(ImproperlyConfigured, match="proxy.example.org"):
        load_settings(tmp_path, TRUSTED_PROXIES="proxy.example.org")


def test_the_old_forwarded_for_switch_is_refused_with_what_replaces_it(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        load_settings(tmp_path, USE_X_FORWARDED_FOR="1")


def test_the_cache_is_the_database_unless_cache_url_names_redis(tmp_path):
    assert load_settings(tmp_path)["CACHES"]["default"]["BACKEND"] == "common.cache.DatabaseCache"
    redis = load_settings(tmp_path, CACHE_URL="redis://cache:6379/2")["CACHES"]["default"]
    assert redis == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache:6379/2",
    }
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL"):
        load_settings(tmp_path, CACHE_URL="memcached://cache:11211")


def test_migrate_creates_the_cache_table_on_a_fresh_database(tmp_path):
    fresh = tmp_path / "fresh.sqlite3"
    env = clean_environ(tmp_path, DATABASE_URL=f"sqlite:///{fresh}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True
    )
    with sqlite3.connect(fresh) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "technocampus_cache" in tables


# ---------------------------------------------------------------- the development server


@pytest.mark.postgres
def test_the_development_server_leaves_no_database_connection_open(db, tmp_path):
    port = free_port()
    name = f"tc-runserver-{port}"
    env = clean_environ(
        tmp_path, DATABASE_URL=database_url(connection.settings_dict) + f"?application_name={name}"
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(port, "/healthz", server)
        for _ in range(5):  # each in a thread of its own, each touching the database
            assert get(port, "/readyz").status == 200

        def open_connections() -> int:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
                )
                return cursor.fetchone()[0]

        assert eventually(lambda: open_connections() == 0), f"{open_connections()} left open"
    finally:
        stop(server)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def eventually(condition, seconds: float = 10.0) -> bool:
    """Whether the condition holds within the time (a connection closes just after its answer)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# ---------------------------------------------------------------- gunicorn with DEBUG=0


def get(port: int, path: str, **headers) -> http.client.HTTPResponse:
    """One request (no decompression, no redirect followed), the body read into `.body`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": "127.0.0.1", **headers})
    response = conn.getresponse()
    response.body = response.read()
    conn.close()
    return response


def wait_for(port: int, path: str, process: subprocess.Popen, **headers) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server stopped: {process.stderr.read().decode()[-3000:]}")
        try:
            if get(port, path, **headers).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the server did not answer {path} within 60 s")


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Path:
    """`collectstatic` as the Docker image runs it (DEBUG=0), into a folder of its own."""
    root = tmp_path_factory.mktemp("static")
    env = clean_environ(tmp_path_factory.mktemp("var"), **PRODUCTION, STATIC_ROOT=str(root))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
    )
    return root


HTTPS = {"X-Forwarded-Proto": "https"}  # what the proxy says; 127.0.0.1 is trusted below
FOREVER = "max-age=315360000"


@contextlib.contextmanager
def gunicorn(static_root: Path, tmp_path: Path, **variables):
    """`gunicorn config.wsgi` with DEBUG=0 on the test database; yields its port.

    The test asks for `transactional_db`: the test database exists, and no transaction of
    the test's holds SQLite's write lock while the server writes."""
    port = free_port()
    env = clean_environ(
        tmp_path,
        **{
            **PRODUCTION,
            "STATIC_ROOT": str(static_root),
            "DATABASE_URL": database_url(connection.settings_dict),
            "WEB_WORKERS": "1",
            "WEB_THREADS": "2",
            **variables,
        },
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}"],
        cwd=BASE_DIR,  # where gunicorn.conf.py is read from
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(port, "/healthz", server, **HTTPS)
        yield port
    finally:
        stop(server)


def test_the_production_server_serves_the_portal_with_its_static_files(
    transactional_db, collected, tmp_path
):
    with gunicorn(collected, tmp_path, TRUSTED_PROXIES="127.0.0.1") as port:
        plain = get(port, "/")
        assert plain.status == 301 and plain.getheader("Location") == "https://127.0.0.1/"

        home = get(port, "/", **HTTPS)
        assert home.status == 200
        html = home.body.decode()
        css = re.search(r'href="(/static/portal/portal\.[0-9a-f]{12}\.css)"', html)
        js = re.search(r'src="(/static/portal/portal\.[0-9a-f]{12}\.js)"', html)
        assert css and js, "the page names no hashed stylesheet or script"
        source = (BASE_DIR / "config" / "static" / "portal" / "portal.css").read_bytes()
        for url, kind, original in [(css[1], "text/css", source), (js[1], "javascript", None)]:
            asset = get(port, url, **HTTPS)
            assert asset.status == 200, url
            assert kind in asset.getheader("Content-Type")
            assert FOREVER in asset.getheader("Cache-Control")
            assert "immutable" in asset.getheader("Cache-Control")
            zipped = get(port, url, **HTTPS, **{"Accept-Encoding": "gzip"})
            assert zipped.getheader("Content-Encoding") == "gzip"
            assert gzip.decompress(zipped.body) == asset.body
            assert len(zipped.body) < len(asset.body)
            if original is not None:
                assert asset.body == original

        admin = get(port, "/admin/login/", **HTTPS)
        assert admin.status == 200
        admin_css = re.search(
            r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', admin.body.decode()
        )
        assert admin_css, "the admin names no hashed stylesheet"
        asset = get(port, admin_css[1], **HTTPS)
        assert asset.status == 200 and "text/css" in asset.getheader("Content-Type")


STATIC_NAME = re.compile(r"""{%\s*static\s+['"]([^'"]+)['"]""")


def test_every_static_file_a_template_names_is_collected(collected):
    manifest = (collected / "staticfiles.json").read_text()
    named = set()
    for template in BASE_DIR.glob("*/templates/**/*.html"):
        named.update(STATIC_NAME.findall(template.read_text()))
    assert "portal/portal.css" in named
    missing = sorted(name for name in named if f'"{name}"' not in manifest)
    assert not missing, f"named by a template, not collected: {missing}"


PAGES = [
    "/",
    "/book/",
    "/bookings/",
    "/waitlist/",
    "/equipment/",
    "/account/",
    "/staff/",
    "/staff/equipment/",
    "/staff/approvals/",
    "/staff/today/",
    "/staff/doors/",
    "/staff/access-log/",
    "/staff/occupancy/",
    "/staff/reports/",
    "/staff/import/",
]


def test_the_main_pages_render_with_the_production_static_files(settings, collected, client, sam):
    settings.STATIC_ROOT = collected
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    for url in ["/accounts/login/", "/accounts/password-reset/"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert re.search(r"/static/portal/portal\.[0-9a-f]{12}\.css", response.content.decode())
    client.force_login(sam)
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 200, url
        assert re.search(r"/static/portal/portal\.[0-9a-f]{12}\.js", response.content.decode())


# ---------------------------------------------------------------- the Docker build context

SECRETS_AND_CLUTTER = [
    "var/secret_key",
    "var/credential_key",
    "var/technocampus.sqlite3",
    "var/mail/20270101-1.log",
    "technocampus.sqlite3-wal",
    "campus/stray.sqlite3",
    ".git/config",
    ".venv/bin/python",
    "tests/conftest.py",
    "bench/load.py",
    ".ci/run",
    "test-artifacts/home.png",
    "static/portal/portal.css",
    "campus/__pycache__/settings.cpython-311.pyc",
    ".pytest_cache/README.md",
    ".ruff_cache/CACHEDIR.TAG",
    ".hypothesis/examples/x",
    "docker/.env",
    ".env",
]
NEEDED = [
    "manage.py",
    "pyproject.toml",
    "uv.lock",
    "gunicorn.conf.py",
    "config/settings.py",
    "config/templates/base.html",
    "config/static/portal/portal.css",
    "config/static/portal/portal.js",
    "common/cache.py",
    "bookings/engine.py",
    "labs/usage.py",
    "access/bridge.py",
    "locale/fr/LC_MESSAGES/django.mo",
]


def test_the_docker_build_context_holds_the_app_and_no_local_data(tmp_path):
    # Docker's own rules (root-anchored patterns, `**`, `!` exceptions), as the Docker SDK
    # implements them: gitignore-style matchers read `var/` as "var/ at any depth".
    from docker.utils.build import exclude_paths

    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tree = tmp_path / "checkout"
    for name in tracked + SECRETS_AND_CLUTTER:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).touch()
    shutil.copy(BASE_DIR / ".dockerignore", tree / ".dockerignore")
    patterns = [
        line.strip()
        for line in (tree / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = exclude_paths(str(tree), patterns, dockerfile="docker/Dockerfile")
    leaked = sorted(name for name in SECRETS_AND_CLUTTER if name in context)
    assert not leaked, f"sent to the image: {leaked}"
    assert not [name for name in context if name.startswith(("var", ".git/", ".venv", "tests/"))]
    missing = sorted(name for name in NEEDED if name not in context)
    assert not missing, f"not in the image: {missing}"


# ---------------------------------------------------------------- compose and its proxy


def test_compose_puts_a_proxy_in_front_of_web_and_trusts_only_its_network():
    compose = yaml.safe_load((BASE_DIR / "docker" / "compose.yml").read_text())
    services = compose["services"]
    web, proxy = services["web"], services["proxy"]
    assert "ports" not in web, "web is published: clients could reach it past the proxy"
    assert proxy["image"].startswith("caddy:")
    assert {"80:80", "443:443"} <= set(proxy["ports"])
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]
    # The proxy reaches web over one network only, the one whose addresses web trusts.
    assert proxy["networks"] == ["edge"] and "edge" in web["networks"]
    subnet = compose["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert web["environment"]["TRUSTED_PROXIES"] == subnet
    assert not any("USE_X_FORWARDED_FOR" in line for line in env_example())
    caddyfile = (BASE_DIR / "docker" / "Caddyfile").read_text()
    assert "reverse_proxy {$UPSTREAM:web:8000}" in caddyfile
    assert "respond /metrics 404" in caddyfile


def env_example() -> list[str]:
    return (BASE_DIR / "docker" / ".env.example").read_text().splitlines()


@pytest.mark.caddy
def test_through_the_compose_proxy_clients_get_https_and_cannot_name_their_address(
    transactional_db, collected, tmp_path
):
    """docker/Caddyfile as compose runs it, with Debian's Caddy, in front of gunicorn."""
    https_port, http_port = free_port(), free_port()
    storage = tmp_path / "caddy"
    (tmp_path / "Caddyfile").write_text(
        # Test-only global options: ports of our own, certificates in a temporary folder, and
        # no attempt to install Caddy's local authority in the system's trust store.
        f"{{\n\tadmin off\n\tskip_install_trust\n\thttp_port {http_port}\n"
        f"\thttps_port {https_port}\n\tstorage file_system {storage}\n}}\n"
        f"import {BASE_DIR / 'docker' / 'Caddyfile'}\n"
    )
    with gunicorn(
        collected, tmp_path, TRUSTED_PROXIES="127.0.0.1,::1", ALLOWED_HOSTS="localhost,127.0.0.1"
    ) as web:
        proxy = subprocess.Popen(
            ["caddy", "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"],
            env={
                **os.environ,
                "SITE_ADDRESS": "localhost",
                "UPSTREAM": f"127.0.0.1:{web}",
                # Caddy's autosaved configuration goes there, not into the user's home.
                "XDG_CONFIG_HOME": str(tmp_path / "config"),
                "XDG_DATA_HOME": str(tmp_path / "data"),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            authority = storage / "pki" / "authorities" / "local" / "root.crt"
            assert eventually(authority.exists, 30), "Caddy made no certificate"
            tls = ssl.create_default_context(cafile=str(authority))

            def through_proxy(path: str, **headers) -> http.client.HTTPResponse:
                conn = http.client.HTTPSConnection("localhost", https_port, context=tls, timeout=10)
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.body = response.read()
                conn.close()
                return response

            assert eventually(lambda: _answers(through_proxy, "/healthz"), 30)
            # web believed the proxy's X-Forwarded-Proto: no redirect to HTTPS.
            page = through_proxy("/accounts/login/")
            assert page.status == 200 and b"portal." in page.body
            assert through_proxy("/metrics").status == 404
            # Rotating X-Forwarded-For changes nothing: the proxy puts the address it sees.
            bearer = {"Authorization": "Bearer tc_guess"}
            for n in range(30):
                spoofed = through_proxy("/api/v1/me", **bearer, **{"X-Forwarded-For": f"6.6.6.{n}"})
                assert spoofed.status == 401
            assert (
                through_proxy("/api/v1/me", **bearer, **{"X-Forwarded-For": "7.7.7.7"}).status
                == 429
            )
        finally:
            stop(proxy)


def _answers(fetch, path: str) -> bool:
    try:
        return fetch(path).status == 200
    except OSError:
        return False
