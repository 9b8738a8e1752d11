"""The cast every test shares, on a small campus.

Acme (a member tenant) leases office B-1.01: alice is its tenant admin, bob a member.
Globex (a non-member) leases B-1.02: charlie works there, an outsider to Acme.
sam is facility staff, tina a lab technician.

Services: tests marked `postgres` need DATABASE_URL on PostgreSQL, tests marked `mqtt` a real
broker at MQTT_TEST_URL (default mqtt://127.0.0.1:1883), tests marked `redis` a Redis at
REDIS_TEST_URL (default redis://127.0.0.1:6379/15), tests marked `caddy` Debian's Caddy,
tests marked `browser` Debian's
Chromium at /usr/bin/chromium and the playwright package (which never downloads a browser
here). Without them they are skipped, unless REQUIRE_SERVICES names them (CI does): then a
missing service is a failure, not a skip.
"""

import functools
import importlib.util
import json
import os
import re
import shutil
import socket
from datetime import date
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from django.core.cache import cache, caches
from django.core.cache.backends.db import BaseDatabaseCache
from django.db import connection
from django.test import Client
from django.utils import translation

from campus.models import ApiToken, Building, Feature, Floor, Lease, Person, Site, Space, Tenant

REQUIRED = {s.strip() for s in os.environ.get("REQUIRE_SERVICES", "").split(",") if s.strip()}
MQTT_TEST_URL = os.environ.get("MQTT_TEST_URL", "mqtt://127.0.0.1:1883")
# A Redis database the tests may empty (CACHE_URL's backend); 15 is the last of the default 16.
REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")
CHROMIUM = "/usr/bin/chromium"


def _missing(service: str, why: str):
    if service in REQUIRED:
        pytest.fail(f"{service} is required (REQUIRE_SERVICES) but {why}")
    pytest.skip(f"needs {service}: {why}")


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def mqtt_reachable() -> bool:
    return reachable(MQTT_TEST_URL, 1883)


def browser_missing() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (uv sync)"
    return None


def database_url(settings_dict: dict) -> str:
    """DATABASE_URL for the database pytest-django made (its NAME is the test database's)."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(settings_dict['NAME']).resolve()}"
    credentials = quote(settings_dict["USER"] or "")
    if settings_dict["PASSWORD"]:
        credentials += ":" + quote(settings_dict["PASSWORD"])
    host = settings_dict["HOST"] or "127.0.0.1"
    port = settings_dict["PORT"] or "5432"
    return f"postgres://{credentials}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture(autouse=True)
def _services(request):
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("postgres", f"the database is {connection.vendor}")
    if request.node.get_closest_marker("mqtt") and not mqtt_reachable():
        _missing("mqtt", f"no broker answers at {MQTT_TEST_URL}")
    if request.node.get_closest_marker("browser") and (why := browser_missing()):
        _missing("browser", why)
    if request.node.get_closest_marker("redis") and not reachable(REDIS_TEST_URL, 6379):
        _missing("redis", f"no Redis answers at {REDIS_TEST_URL}")
    if request.node.get_closest_marker("caddy") and not shutil.which("caddy"):
        _missing("caddy", "no caddy on the PATH (apt-get install caddy)")


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Assertions read English messages; the French pages have tests of their own.
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _fresh_rate_limits(request, django_db_blocker):
    """Rate-limit counters must not leak from one test into another. They live in the default
    cache: the database's table, rolled back with a test's transaction but not flushed after a
    transactional test, or CACHE_URL's Redis. Emptied after every test that could count."""
    database_cache = isinstance(caches["default"], BaseDatabaseCache)
    if not database_cache:
        cache.clear()  # and before: what an earlier run left
    yield
    uses_db = request.node.get_closest_marker("django_db") or {
        "db",
        "transactional_db",
        "live_server",
    } & set(request.fixturenames)
    if not database_cache:
        cache.clear()
    elif uses_db:
        with django_db_blocker.unblock():
            cache.clear()


@pytest.fixture
def campus(db):
    """A site, building B with a ground floor and a first floor, a few spaces and features."""
    site = Site.objects.create(name="Test campus", slug="test")
    building = Building.objects.create(site=site, code="B", name="Main")
    ground = Floor.objects.create(building=building, level=0, name="Ground")
    first = Floor.objects.create(building=building, level=1, name="First")
    projector = Feature.objects.create(code="projector", name="Projector")
    esd = Feature.objects.create(code="esd-floor", name="ESD floor")
    spaces = {
        "office_acme": Space.objects.create(
            floor=first, code="B-1.01", name="Office 1", kind="office", capacity=4
        ),
        "office_globex": Space.objects.create(
            floor=first, code="B-1.02", name="Office 2", kind="office", capacity=4
        ),
        "meeting": Space.objects.create(
            floor=first, code="B-1.50", name="Loire", kind="meeting_room", capacity=8, bookable=True
        ),
        "big_meeting": Space.objects.create(
            floor=ground,
            code="B-0.03",
            name="Maine",
            kind="meeting_room",
            capacity=20,
            bookable=True,
        ),
        "lab": Space.objects.create(
            floor=ground, code="B-0.10", name="EMC lab", kind="lab", capacity=6, bookable=True
        ),
    }
    spaces["meeting"].features.add(projector)
    spaces["big_meeting"].features.add(projector)
    spaces["lab"].features.add(esd)
    return {"site": site, "building": building, "ground": ground, "first": first, **spaces}


def other_site(name: str, code: str, time_zone: str) -> dict:
    """A second site in another time zone: building `code`, a ground floor, a meeting room
    `{code}-0.50`, a lab `{code}-0.10` and a common hall `{code}-0.01`."""
    site = Site.objects.create(name=name, slug=code.lower(), time_zone=time_zone)
    building = Building.objects.create(site=site, code=code, name=name)
    ground = Floor.objects.create(building=building, level=0, name=f"{name} ground")
    spaces = {
        "meeting": Space.objects.create(
            floor=ground, code=f"{code}-0.50", name="Salon", kind="meeting_room", capacity=8
        ),
        "lab": Space.objects.create(
            floor=ground, code=f"{code}-0.10", name="Lab", kind="lab", capacity=6
        ),
        "hall": Space.objects.create(
            floor=ground, code=f"{code}-0.01", name="Hall", kind="common", capacity=50
        ),
    }
    return {"site": site, "building": building, "ground": ground, **spaces}


@pytest.fixture
def montreal(campus):
    """A site in America/Montreal: 6 hours behind Paris, its clocks change on 8 March 2026."""
    return other_site("Montréal", "M", "America/Montreal")


@pytest.fixture
def tokyo(campus):
    """A site in Asia/Tokyo: 8 hours ahead of Paris in winter, no daylight-saving time."""
    return other_site("Tokyo", "T", "Asia/Tokyo")


@pytest.fixture
def acme(campus):
    tenant = Tenant.objects.create(name="Acme", tier="member", contract_start=date(2024, 1, 1))
    Lease.objects.create(tenant=tenant, space=campus["office_acme"], start=date(2024, 1, 1))
    return tenant


@pytest.fixture
def globex(campus):
    tenant = Tenant.objects.create(
        name="Globex", tier="non_member", contract_start=date(2024, 1, 1)
    )
    Lease.objects.create(tenant=tenant, space=campus["office_globex"], start=date(2024, 1, 1))
    return tenant


def _person(email, first, **extra):
    return Person.objects.create_user(
        email, "pw-" + first, first_name=first, last_name="Test", **extra
    )


@pytest.fixture
def alice(acme):
    return _person("alice@acme.test", "Alice", tenant=acme, is_tenant_admin=True)


@pytest.fixture
def bob(acme):
    return _person("bob@acme.test", "Bob", tenant=acme)


@pytest.fixture
def charlie(globex):
    return _person("charlie@globex.test", "Charlie", tenant=globex)


@pytest.fixture
def sam(campus):
    return _person("sam@campus.test", "Sam", is_facility_staff=True)


@pytest.fixture
def tina(campus):
    return _person("tina@campus.test", "Tina", is_lab_technician=True)


@functools.cache
def _operations() -> list[tuple[str, re.Pattern, dict]]:
    from config.api import api

    found = []
    for path, methods in api.get_openapi_schema()["paths"].items():
        pattern = re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)) + "$")
        found += [(m.upper(), pattern, op["responses"]) for m, op in methods.items()]
    return found


def assert_declared(method: str, path: str, response):
    """An API answer is one its operation declares in the OpenAPI document: its status and,
    for an error, its code among those declared with that status."""
    found = [r for m, p, r in _operations() if m == method and p.match(path)]
    if not found or response.status_code == 500:  # no operation (404, 405), or a crash
        return
    status = response.status_code
    declared = found[0].get(status)
    assert declared, f"{method} {path} answered {status}, undeclared: {response.content[:300]}"
    if status >= 400:
        code = json.loads(response.content)["code"]
        schema = declared["content"]["application/json"]["schema"]
        codes = schema["allOf"][1]["properties"]["code"]["enum"]
        assert code in codes, f"{method} {path} answered {status} {code!r}, undeclared: {codes}"


class ApiClient(Client):
    """A test client whose every API answer is checked against the OpenAPI document."""

    def request(self, **request):
        response = super().request(**request)
        assert_declared(request["REQUEST_METHOD"], request["PATH_INFO"], response)
        return response


def api_client(person: Person) -> Client:
    """A client that calls the API with a fresh personal token of this person."""
    _token, plaintext = ApiToken.issue(person, "tests")
    return ApiClient(headers={"Authorization": f"Bearer {plaintext}"})


@pytest.fixture
def as_alice(alice):
    return api_client(alice)


@pytest.fixture
def as_bob(bob):
    return api_client(bob)


@pytest.fixture
def as_charlie(charlie):
    return api_client(charlie)


@pytest.fixture
def as_sam(sam):
    return api_client(sam)


@pytest.fixture
def as_tina(tina):
    return api_client(tina)
