"""Technocampus settings: everything comes from environment variables.

Every variable read here is listed in docker/.env.example and, with its default and meaning,
in docs/configuration.md. A secret may also be given as a file: `<NAME>_FILE` holds the
path of a file whose content is the value (Docker and Kubernetes secrets).
"""

import ipaddress
import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    """The variable's value, or the content of the file named by `<name>_FILE`."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ImproperlyConfigured(f"{name}_FILE={path} cannot be read: {e}") from e
    return os.environ.get(name, default)


def envbool(name: str, default: str) -> bool:
    value = (env(name, default) or "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: str) -> int:
    value = env(name, default)
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from e


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


VAR_DIR = Path(env("VAR_DIR", str(BASE_DIR / "var")))

# Local development runs with DEBUG on (the zero-setup demo); the Docker image sets DEBUG=0.
DEBUG = envbool("DEBUG", "True")


def _local_secret(filename: str) -> str:
    """A random secret generated once and kept in VAR_DIR, for development only."""
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _required_secret(name: str, filename: str) -> str:
    value = env(name)
    if value:
        return value
    if DEBUG:
        return _local_secret(filename)
    raise ImproperlyConfigured(f"{name} must be set when DEBUG is off (production).")


SECRET_KEY = _required_secret("SECRET_KEY", "secret_key")
# Key of the HMAC that turns a badge UID into the credential hash sent by door readers
# (docs/mqtt.md). It must be the same on the backend and in every controller.
CREDENTIAL_KEY = _required_secret("CREDENTIAL_KEY", "credential_key")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = (env("SITE_URL", "http://localhost:8000") or "").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "ninja",
    "schedule",
    "campus",
    "bookings",
    "labs",
    "access",
    "privacy",
    "config",
]

MIDDLEWARE = [
    "config.ops.ApiJsonErrors",  # first: it sees every answer, the other middleware's too
    # Before anything reads the client's address or X-Forwarded-Proto (SecurityMiddleware).
    "config.ops.ForwardedHeaders",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.ops.OpsMiddleware",
]
if not DEBUG:
    # The production server serves the static files itself, from STATIC_ROOT: compressed,
    # under hashed names cached for good. (The development server serves them from the apps.)
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

AUTHENTICATION_BACKENDS = ["campus.auth.ThrottledModelBackend"]


def envnetworks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in envlist(name, ""):
        try:
            networks.append(ipaddress.ip_network(item))
        except ValueError as e:
            raise ImproperlyConfigured(f"{name}: {item!r} is no address or network: {e}") from e
    return networks


# The reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are believed (addresses or
# networks). Anyone else's are dropped (config.ops.ForwardedHeaders): a client that could
# name its own address would escape every rate limit.
TRUSTED_PROXIES = envnetworks("TRUSTED_PROXIES")
if envbool("USE_X_FORWARDED_FOR", "False"):
    raise ImproperlyConfigured(
        "USE_X_FORWARDED_FOR is gone: list your proxies' addresses in TRUSTED_PROXIES instead."
    )

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "campus.Person"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # First, so that the portal's base.html, 403.html and 404.html win over the ones
        # django-scheduler and the admin ship in their app template folders.
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """A Django DATABASES entry from `sqlite:///path` or `postgres://user:pw@host:port/name`."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "sqlite":
        # sqlite:///relative/file or sqlite:////absolute/file, as dj-database-url reads them.
        name = unquote(parts.path[1:])
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": name or str(VAR_DIR / "technocampus.sqlite3"),
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so that concurrent writers queue
                # on the busy timeout instead of failing half-way with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": int(options.get("timeout", 30)),
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # A file, not Django's in-memory default: concurrency tests open one connection
            # per thread, and they must all see the same database.
            "TEST": {"NAME": str(VAR_DIR / "test_technocampus.sqlite3")},
        }
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "technocampus",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # One connection per request costs ~10x throughput: gunicorn.conf.py and the Docker
            # image keep them (60 s). Not the development server, which starts a thread per
            # request: each would keep its own, until PostgreSQL has no connection left.
            "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", "0"),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
            "TEST": {"NAME": env("DB_TEST_NAME")},
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {parts.scheme!r} is not supported (use sqlite:/// or postgres://)"
    )


DATABASE_URL = env("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'technocampus.sqlite3'}"
if DATABASE_URL.startswith("sqlite"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def cache_from_url(url: str) -> dict:
    """The default cache: the database's (a table `migrate` creates), or `redis://host/db`.

    Rate limits count in it (common.throttle.Throttle), so it must be one for every worker and
    replica: never a per-process cache.
    """
    if not url:
        return {
            "BACKEND": "common.cache.DatabaseCache",
            "LOCATION": "technocampus_cache",
            # Far above what rate limits keep, so that culling never forgets a live counter.
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    if urlsplit(url).scheme in ("redis", "rediss", "unix"):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    raise ImproperlyConfigured(f"CACHE_URL {url!r}: use redis://host:6379/0, or leave it empty")


CACHES = {"default": cache_from_url(env("CACHE_URL", "") or "")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env("LANGUAGE_CODE", "fr")
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "Europe/Paris")
# The public holidays closed as closures (bookings.jobs): France's, plus a region's own days
# when set: "57" or "6AE" (Alsace-Moselle: Good Friday and 26 December), an overseas
# department ("971"…), as the `holidays` package names them.
PUBLIC_HOLIDAYS_SUBDIV = env("PUBLIC_HOLIDAYS_SUBDIV", "")
# How long a controller may grant from its allow-list without news from the backend.
ACL_VALID_HOURS = envint("ACL_VALID_HOURS", "48")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # In production, collectstatic writes hashed names (cached for good by browsers, changed
    # with the content) and gzip copies; a template naming a missing file fails loudly.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# The portal's sign-in page; the admin keeps its own (admin:login).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# Password-reset links in e-mails stay valid for one day.
PASSWORD_RESET_TIMEOUT = 24 * 3600

NINJA_PAGINATION_PER_PAGE = 100
NINJA_PAGINATION_MAX_LIMIT = 1000

# E-mail: one file per message in VAR_DIR/mail unless an SMTP host is configured, in
# development and in production alike.
EMAIL_HOST = env("EMAIL_HOST", "")
EMAIL_PORT = envint("EMAIL_PORT", "587")
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "True")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Technocampus <noreply@technocampus.local>")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.filebased.EmailBackend"
)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")

# MQTT: without MQTT_URL the demo command starts an embedded broker on this URL.
MQTT_URL = env("MQTT_URL", "")
MQTT_ROOT = env("MQTT_ROOT", "campus/v1")
# MQTT 5 (persistent sessions with expiry, shared subscriptions for several bridge workers).
# Off for a broker that speaks only 3.1.1, like the demo's embedded amqtt: one bridge worker,
# plain subscriptions.
MQTT_V5 = envbool("MQTT_V5", "True")
# Tasmota relays keep their own topics (cmnd/<topic>/POWER…), outside MQTT_ROOT; a prefix
# ("site-a/") puts them under one level of their own.
TASMOTA_PREFIX = env("TASMOTA_PREFIX", "")
# Machine power (access.power): the lease a grant gives (renewed every third of it), the warning
# before the booking ends, the grace after it, how long a relay has to confirm POWER ON.
EQ_LEASE_S = envint("EQ_LEASE_S", "60")
EQ_WARN_S = envint("EQ_WARN_S", "300")
EQ_GRACE_S = envint("EQ_GRACE_S", "300")
EQ_CONFIRM_S = float(env("EQ_CONFIRM_S", "2") or "2")
# Badge scans each controller may send the bridge (access.bridge.ScanLimiter): SCAN_RATE a
# second, SCAN_BURST at once; beyond, they are dropped unanswered. 0 lifts the limit.
SCAN_RATE = float(env("SCAN_RATE", "5") or "5")
SCAN_BURST = envint("SCAN_BURST", "20")

if not DEBUG:
    SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "True")
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # Believed only from TRUSTED_PROXIES: config.ops.ForwardedHeaders drops it from others.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "True")
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "False")
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
    # HSTS preload commits the whole domain to HTTPS in browsers for good: the facility's IT
    # decides it (SECURE_HSTS_PRELOAD=1), so the check that nags about it is silenced.
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

LOG_FORMAT = env("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT is plain or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
