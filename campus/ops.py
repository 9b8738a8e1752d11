"""What the IT team runs the system with: health and readiness probes, Prometheus metrics,
security headers, brute-force protection on sign-in and tokens (JSON logs: campus/logs.py).

Metrics are defined here, once, and incremented where things happen (the booking engine, the
bridge). Under gunicorn with several workers, set PROMETHEUS_MULTIPROC_DIR to an empty
directory so that /metrics adds up every worker.
"""

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


class ApiJsonErrors:
    """Every error under /api/ in the API's format, `{"detail", "code"}`, whoever produced it.

    The API's exception handlers (campus/api.py) answer what reaches an operation. The rest is
    answered by Django in HTML or plain text: a path that names no operation (404), a method
    the operation does not take (405), a Host header not allowed (400), an exception no
    handler knows (500, logged with its traceback by Django first). Outermost middleware, so
    that it also sees what the other middleware answered. Headers such as `Allow` are kept.
    """

    PREFIX = "/api/"
    CODES = {
        400: ("bad_request", "Bad request."),
        404: ("not_found", "No API operation at this path; see /api/v1/docs."),
        405: ("method_not_allowed", "This method is not allowed here."),
        413: ("too_large", "The request body is too large."),
        500: ("server_error", "Internal server error; it has been logged."),
    }
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
    """At most `limit` failures per key in `window` seconds, counted in Django's cache.

    With the default per-process cache each worker counts on its own: N workers allow N times
    the limit, still far from a brute force. Point CACHE_URL at a shared cache to make it exact.
    """

    def __init__(self, name: str, limit: int, window: int):
        self.name, self.limit, self.window = name, limit, window

    def _key(self, key: str) -> str:
        return f"throttle:{self.name}:{key}"

    def blocked(self, key: str) -> bool:
        return cache.get(self._key(key), 0) >= self.limit

    def fail(self, key: str) -> None:
        k = self._key(key)
        if not cache.add(k, 1, self.window):
            try:
                cache.incr(k)
            except ValueError:
                cache.set(k, 1, self.window)

    def reset(self, key: str) -> None:
        cache.delete(self._key(key))


SIGN_IN = Throttle("sign-in", limit=10, window=15 * 60)
TOKENS = Throttle("token", limit=30, window=5 * 60)


def client_ip(request) -> str:
    if request is None:
        return "-"
    if settings.USE_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "-")


class ThrottledModelBackend(ModelBackend):
    """E-mail + password sign-in (portal and admin), refused for 15 minutes after 10 failures
    for one address or from one IP."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        email = (username or kwargs.get("email") or "").strip().lower()
        keys = [f"email:{email}", f"ip:{client_ip(request)}"]
        if any(SIGN_IN.blocked(k) for k in keys):
            logging.getLogger("campus.security").warning(
                "sign-in throttled for %s", client_ip(request)
            )
            return None
        user = super().authenticate(
            request, username=email or username, password=password, **kwargs
        )
        if user is None:
            for k in keys:
                SIGN_IN.fail(k)
        else:
            SIGN_IN.reset(f"email:{email}")
        return user
