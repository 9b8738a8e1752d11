"""What the IT team runs the system with: health and readiness probes, the Prometheus
metrics (defined in common.metrics), security headers, forwarding headers believed from
trusted proxies only, and API errors in JSON whoever produced them (JSON logs:
config/logs.py)."""

import ipaddress
import os
import socket
from http import HTTPStatus

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from common.errors import status_of
from common.metrics import REQUESTS


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

    The API's exception handlers (config/api.py) answer what reaches an operation. The rest is
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
