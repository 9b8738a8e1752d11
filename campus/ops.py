"""What the IT team runs the system with: health and readiness probes, Prometheus metrics,
security headers, forwarding headers believed from trusted proxies only, brute-force
protection on sign-in and tokens (JSON logs: campus/logs.py).

Metrics are defined here, once, and incremented where things happen (the booking engine, the
bridge). Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to an empty
directory so that /metrics adds up every worker.
"""

import hashlib
import ipaddress
import logging
import os
import socket
from http import HTTPStatus

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from campus.errors import status_of

# ---------------------------------------------------------------- metrics

REQUESTS = Counter(
    "technocampus_http_requests_total", "HTTP requests answered", ["method", "status"]
)
BOOKINGS_CREATED = Counter("technocampus_bookings_created_total", "Bookings created", ["kind"])
BOOKINGS_REFUSED = Counter(
    "technocampus_bookings_refused_total", "Booking requests refused", ["code"]
)
DECISIONS = Counter("technocampus_access_decisions_total", "Access decisions", ["result", "reason"])
DECISION_SECONDS = Histogram(
    "technocampus_access_decision_seconds",
    "Time from scan received to decision published",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
CONTROLLERS_ONLINE = Gauge(
    "technocampus_controllers_online", "Controllers online", multiprocess_mode="livemax"
)
ACL_LAGGING = Gauge(
    "technocampus_allowlists_lagging",
    "Controllers whose allow-list lags",
    multiprocess_mode="livemax",
)
BRIDGE_RECONNECTS = Counter("technocampus_bridge_reconnects_total", "Bridge reconnections", ["to"])
SCANS_RATE_LIMITED = Counter(
    "technocampus_access_scans_rate_limited_total",
    "Badge scans dropped unanswered: beyond their controller's rate limit (SCAN_RATE, SCAN_BURST)",
)


def metrics(request):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body = generate_latest(registry)
    else:
        body = generate_latest()
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------- probes


def healthz(request):
    """The process is up and answers: for a liveness probe. Touches nothing else."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """The database answers and the MQTT broker accepts connections: for a readiness probe."""
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    ready = all(v == "ok" for v in checks.values() if v != "not configured")
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", **checks}, status=200 if ready else 503
    )


def _database_ok() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as e:  # any failure means "not ready", with its reason for the operator
        return f"error: {type(e).__name__}"


def _broker_ok() -> str:
    if not settings.MQTT_URL:
        return "not configured"
    from access.mqtt import broker_from_url

    try:
        broker = broker_from_url(settings.MQTT_URL)
        with socket.create_connection((broker.host, broker.port), timeout=1):
            return "ok"
    except (OSError, ValueError) as e:
        return f"error: {type(e).__name__}"


# ---------------------------------------------------------------- middleware


class OpsMiddleware:
    """Counts requests and adds the security headers Django 5.2 does not set itself."""

    CSP = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    )
    # The interactive API docs (Swagger UI) run an inline script.
    CSP_EXEMPT = ("/api/v1/docs",)

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        REQUESTS.labels(request.method, f"{response.status_code // 100}xx").inc()
        if not request.path.startswith(self.CSP_EXEMPT):
            response.setdefault("Content-Security-Policy", self.CSP)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


def client_ip(request) -> str:
    """The caller's address, as ForwardedHeaders left it in REMOTE_ADDR."""
    if request is None:
        return "-"
    return request.META.get("REMOTE_ADDR") or "-"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a header hop: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
    `[2001:db8::1]:4711`; None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen by a server listening on IPv6 arrives as ::ffff:a.b.c.d.
    return getattr(ip, "ipv4_mapped", None) or ip


def _trusted(ip) -> bool:
    return ip is not None and any(ip in network for network in settings.TRUSTED_PROXIES)


def forwarded_client(peer: str, forwarded_for: str) -> str:
    """The client's address, from the peer's and the X-Forwarded-For hops before it.

    Each proxy appends the address it was called from: walking from the right, every hop a
    trusted proxy added is believed, and the first address that is not a trusted proxy is
    the client. Whatever stands left of it was written by the client itself.
    """
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    client = peer
    while hops and _trusted(_ip(client)):
        hop = _ip(hops.pop())
        if hop is None:
            break  # not an address: the proxy before it is the last one known
        client = str(hop)
    return client


class ForwardedHeaders:
    """Forwarding headers count only from TRUSTED_PROXIES, before anything reads them.

    From a trusted proxy, REMOTE_ADDR becomes the client's address (forwarded_client) and
    X-Forwarded-Proto stays for Django's SECURE_PROXY_SSL_HEADER. From anyone else every
    forwarding header is dropped: a client naming its own address would escape the rate
    limits, one saying "https" over plain HTTP would get secure cookies sent in clear.
    """

    HEADERS = (
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_X_FORWARDED_PORT",
        "HTTP_X_REAL_IP",
        "HTTP_FORWARDED",
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        peer = meta.get("REMOTE_ADDR", "")
        if _trusted(_ip(peer)):
            meta["REMOTE_ADDR"] = forwarded_client(peer, meta.pop("HTTP_X_FORWARDED_FOR", ""))
        else:
            for header in self.HEADERS:
                meta.pop(header, None)
        return self.get_response(request)


class ApiJsonErrors:
    """Every error under /api/ in the API's format, `{"detail", "code"}`, whoever produced it.

    The API's exception handlers (campus/api.py) answer what reaches an operation. The rest is
    answered by Django in HTML or plain text: a path that names no operation (404), a method
    the operation does not take (405), a Host header not allowed (400), an exception no
    handler knows (500, logged with its traceback by Django first). Outermost middleware, so
    that it also sees what the other middleware answered. Headers such as `Allow` are kept.
    """

    PREFIX = "/api/"
    DETAILS = {
        "bad_request": "Bad request.",
        "not_found": "No API operation at this path; see /api/v1/docs.",
        "method_not_allowed": "This method is not allowed here.",
        "too_large": "The request body is too large.",
        "server_error": "Internal server error; it has been logged.",
    }
    CODES = {status_of(code): (code, detail) for code, detail in DETAILS.items()}
    DROPPED = {"content-type", "content-length", "content-disposition", "content-encoding"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not (request.path_info + "/").startswith(self.PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status = response.status_code
        code, detail = self.CODES.get(status, ("error", HTTPStatus(status).phrase + "."))
        if status == 405 and response.has_header("Allow"):
            detail = f"{request.method} is not allowed here; allowed: {response['Allow']}."
        answer = JsonResponse({"detail": detail, "code": code}, status=status)
        for name, value in response.items():
            if name.lower() not in self.DROPPED:
                answer[name] = value
        answer.cookies = response.cookies
        return answer


# ---------------------------------------------------------------- brute force


class Throttle:
    """At most `limit` failures per key in a window of `window` seconds from the first one.

    Counted in the default cache, which every worker and replica shares (the database's
    cache table, or CACHE_URL's Redis): `add` opens a window, `incr` counts in it atomically
    and leaves its end alone (common.cache.DatabaseCache does so for the database). Keys are
    hashed: they hold e-mail addresses and token prefixes typed by anyone.
    """

    def __init__(self, name: str, limit: int, window: int):
        self.name, self.limit, self.window = name, limit, window

    def _key(self, key: str) -> str:
        return f"throttle:{self.name}:{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def count(self, key: str) -> int:
        return cache.get(self._key(key), 0)

    def blocked(self, key: str) -> bool:
        return self.count(key) >= self.limit

    def fail(self, key: str) -> int:
        """Count one failure; the number counted in the window so far."""
        k = self._key(key)
        if cache.add(k, 1, self.window):
            return 1
        try:
            return cache.incr(k)
        except ValueError:  # the window ended between the two calls
            cache.set(k, 1, self.window)
            return 1

    def reset(self, key: str) -> None:
        cache.delete(self._key(key))


# Guessing one person's password stops at 10 tries: the account then waits 15 minutes, the
# right password too. Failures from one address are counted only to be logged: an office or a
# proxy puts many people behind one address, and none of them is refused for another's typos.
SIGN_IN = Throttle("sign-in", limit=10, window=15 * 60)
SIGN_IN_FROM = Throttle("sign-in-from", limit=100, window=15 * 60)
# API tokens carry 256 random bits: guessing one is hopeless, a valid one always passes. Past
# 30 invalid ones from an address, or for one token prefix, the next are answered 429 rather
# than 401, to tell a broken or scanning client to stop.
TOKENS = Throttle("token", limit=30, window=5 * 60)

security_log = logging.getLogger("campus.security")


def sign_in_locked(email: str) -> bool:
    """Too many failed sign-ins for this e-mail address: whether or not an account has it."""
    return SIGN_IN.blocked(email.strip().lower())


class ThrottledModelBackend(ModelBackend):
    """E-mail + password sign-in (portal and admin), with the account lock of SIGN_IN."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        username = username or kwargs.get("email")
        if not username or password is None:
            return None  # not a password sign-in: nothing to count
        email = username.strip().lower()
        if sign_in_locked(email):
            security_log.warning("sign-in refused: account locked (from %s)", client_ip(request))
            return None
        user = super().authenticate(request, username=email, password=password, **kwargs)
        if user is not None:
            SIGN_IN.reset(email)
            return user
        if SIGN_IN.fail(email) == SIGN_IN.limit:
            security_log.warning("account locked after %d failed sign-ins", SIGN_IN.limit)
        ip = client_ip(request)
        if SIGN_IN_FROM.fail(ip) == SIGN_IN_FROM.limit:
            security_log.warning("%d failed sign-ins from %s", SIGN_IN_FROM.limit, ip)
        return None
