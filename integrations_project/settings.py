"""Settings for the Integrations API.

Every setting comes from an environment variable with a safe default (see `.env.example`).
With no DATABASE_URL / CELERY_BROKER_URL the service runs on an embedded default: a SQLite file
and a filesystem Celery broker under `var/`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from integrations_project.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _development_secret_key() -> str:
    """A random key kept in var/ so encrypted data survives restarts of a development setup."""
    path = VAR_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", False)
# Production (DEBUG off, not SQLite) refuses to start without SECRET_KEY (common.checks).
SECRET_KEY_FROM_ENVIRONMENT = bool(env_str("SECRET_KEY"))
SECRET_KEY = env_str("SECRET_KEY") or _development_secret_key()
# Rotation: the previous keys, comma-separated. Sessions, encrypted values (when derived from
# SECRET_KEY) and channel lookup keys made with them keep working; see docs/operations.md.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "common",
    "access",
    "workspaces",
    "tokens",
    "templates_app",
    "approvals",
    "plugins_app",
    "channels_app",
    "schedules",
    "observability",
    "housekeeping",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "common.middleware.RequestIdMiddleware",
    "common.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "integrations_project.urls"
WSGI_APPLICATION = "integrations_project.wsgi.application"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
# CONN_HEALTH_CHECKS: a kept connection is tested before a request reuses it, so a PostgreSQL
# restart or a killed backend costs no request a 500 (the test is skipped on a fresh connection).
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # web, worker and beat share the file: WAL and immediate transactions avoid "database is locked".
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# PostgreSQL: the inbound webhook's insert (channels_app/ingest.py) is prepared once per
# connection instead of planned on every update; Django's own queries are never prepared. Turn
# off behind a pooler that cannot keep prepared statements (PgBouncer before 1.21 in
# transaction mode).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)
# A process serving many greenlets or threads (the agent worker of the Procfile) shares a small
# pool of PostgreSQL connections instead of opening one per greenlet: with DATABASE_POOL_MAX_SIZE
# set, Django's psycopg pool is used (connections are returned to it when closed, and
# workspaces.delivery returns its connection while an agent thinks). Unset: one connection per
# thread, kept CONN_MAX_AGE seconds, as before.
DATABASE_POOL_MAX_SIZE = env_int("DATABASE_POOL_MAX_SIZE", 0, minimum=0)
if DATABASE_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # required by the pool: "closing" returns to it
    # CONN_HEALTH_CHECKS (on) makes the pool check a connection before handing it out.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DATABASE_POOL_MAX_SIZE),
        "max_size": DATABASE_POOL_MAX_SIZE,
        # A greenlet waits this long for a free connection before its task fails (and its job waits
        # for its lease): long, because under a burst thousands of greenlets queue for 20 connections.
        "timeout": env_float("DATABASE_POOL_TIMEOUT_SECONDS", 120.0, minimum=1.0),
    }
# Names the process in pg_stat_activity (operators count connections per process kind with it).
DATABASE_APPLICATION_NAME = env_str("DATABASE_APPLICATION_NAME")
if DATABASE_APPLICATION_NAME and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = DATABASE_APPLICATION_NAME
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
# HTTPS in production (`manage.py check --deploy`): all off by default so the embedded default
# works on plain http://127.0.0.1; docs/operations.md lists the values for a deployment.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy: "HEADER,value", e.g. "HTTP_X_FORWARDED_PROTO,https". Only set it
# when the proxy always overwrites that header.
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured(
        'SECURE_PROXY_SSL_HEADER must be "HEADER,value", e.g. HTTP_X_FORWARDED_PROTO,https'
    )
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header) if _proxy_ssl_header else None
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# Request bodies: 1 MiB by default, per-view overrides (plugin install 64 KiB, bundle import
# 10 MiB) are enforced by common.middleware.BodySizeLimitMiddleware before parsing. Django's own
# cap is the largest of them, as a backstop.
API_MAX_BODY_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --- Secrets at rest --------------------------------------------------------------------------
# Comma-separated Fernet keys, newest first. Empty: one key derived from SECRET_KEY (development).
ENCRYPTION_KEYS = env_list("ENCRYPTION_KEYS")

# --- Authentication ---------------------------------------------------------------------------
ADMIN_TOKEN = env_str("ADMIN_TOKEN")
TOKEN_LAST_USED_RESOLUTION_SECONDS = 60
WORKSPACE_TOKEN_LIMIT = 50
# Requests per workspace token (DRF throttle rate: N/s, N/min, N/hour, N/day), counted in the
# shared cache (Redis when the broker is Redis), so every web process counts together.
WORKSPACE_TOKEN_RATE = env_str("WORKSPACE_TOKEN_RATE", "1200/min")

# --- Quotas: per workspace; one more → 409 limit_reached (imports included) -------------------
WORKSPACE_MAX_SCHEDULES = env_int("WORKSPACE_MAX_SCHEDULES", 100, minimum=1)
WORKSPACE_MAX_CHANNELS = env_int("WORKSPACE_MAX_CHANNELS", 20, minimum=1)
WORKSPACE_MAX_PLUGINS = env_int("WORKSPACE_MAX_PLUGINS", 50, minimum=1)
WORKSPACE_MAX_PENDING_APPROVALS = env_int("WORKSPACE_MAX_PENDING_APPROVALS", 200, minimum=1)
WORKSPACE_MAX_MEMORY_KEYS = env_int("WORKSPACE_MAX_MEMORY_KEYS", 1000, minimum=1)

# --- Workspaces and agents --------------------------------------------------------------------
WORKSPACE_RUNTIMES = env_list(
    "WORKSPACE_RUNTIMES", "langgraph,claude-code,crewai,autogen,deepagents,openclaw,external"
)
WORKSPACE_DEFAULT_RUNTIME = env_str("WORKSPACE_DEFAULT_RUNTIME", "langgraph")
WORKSPACE_ONLINE_SECONDS = 90
WORKSPACE_HEARTBEAT_FRESH_SECONDS = 300
A2A_TIMEOUT_SECONDS = env_int("A2A_TIMEOUT_SECONDS", 300, minimum=1)
A2A_ALLOW_PRIVATE_NETWORKS = env_bool("A2A_ALLOW_PRIVATE_NETWORKS", True)
A2A_MAX_RESPONSE_BYTES = env_int("A2A_MAX_RESPONSE_BYTES", 4 * 1024 * 1024, minimum=1024)
# How long the A2A version found for an `auto` workspace (card or refused attempt) is remembered.
A2A_PROTOCOL_CACHE_SECONDS = env_int("A2A_PROTOCOL_CACHE_SECONDS", 600, minimum=0)
# Deliveries (schedule runs, chat messages, approval notices) in flight to one workspace's agent
# at once: its `max_concurrent_tasks`, but never more than this. A delivery that finds the
# workspace at its limit waits as a due row (no worker slot held) and is tried again shortly.
WORKSPACE_MAX_CONCURRENT_DELIVERIES = env_int("WORKSPACE_MAX_CONCURRENT_DELIVERIES", 50, minimum=1)
# How soon a chat message or notice that found its workspace at the limit is tried again.
DELIVERY_RECHECK_SECONDS = env_float("DELIVERY_RECHECK_SECONDS", 1.0, minimum=0.05)

# Outbound HTTP (common/http.py): keep-alive connection pools per endpoint, shared by the process's
# threads or greenlets; the limits below are per endpoint. Connections beyond the keep-alive
# budget are closed after use.
HTTP_MAX_CONNECTIONS = env_int("HTTP_MAX_CONNECTIONS", 2000, minimum=1)
HTTP_MAX_KEEPALIVE_CONNECTIONS = env_int("HTTP_MAX_KEEPALIVE_CONNECTIONS", 200, minimum=0)
HTTP_KEEPALIVE_SECONDS = env_float("HTTP_KEEPALIVE_SECONDS", 30.0, minimum=0.0)
# One pool per endpoint (an agent's URL, a platform method); at most this many kept per process.
HTTP_MAX_POOLS = env_int("HTTP_MAX_POOLS", 10000, minimum=1)
# Pools per endpoint, chosen by the calling thread or greenlet: httpcore walks a pool's connections
# on every request, so thousands of calls to one endpoint are spread over this many small pools.
HTTP_POOL_SHARDS = env_int("HTTP_POOL_SHARDS", 32, minimum=1)

PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL").rstrip("/")

# --- Scheduler ---------------------------------------------------------------------------------
SCHEDULER_TICK_SECONDS = env_int("SCHEDULER_TICK_SECONDS", 10, minimum=1)
SCHEDULE_BUSY_GRACE_SECONDS = env_int("SCHEDULE_BUSY_GRACE_SECONDS", 120, minimum=0)

# --- Platforms (channels) ----------------------------------------------------------------------
TELEGRAM_API_BASE_URL = env_str("TELEGRAM_API_BASE_URL", "https://api.telegram.org").rstrip("/")
SLACK_API_BASE_URL = env_str("SLACK_API_BASE_URL", "https://slack.com/api").rstrip("/")
DISCORD_WEBHOOK_BASE_URL = env_str("DISCORD_WEBHOOK_BASE_URL", "https://discord.com/api/webhooks/")
LARK_WEBHOOK_BASE_URLS = env_list(
    "LARK_WEBHOOK_BASE_URLS",
    "https://open.feishu.cn/open-apis/bot/v2/hook/,https://open.larksuite.com/open-apis/bot/v2/hook/",
)
# Outbound channel messages: at most this many attempts, with capped exponential backoff between
# transient failures unless the platform says how long to wait (Retry-After / retry_after).
CHANNEL_SEND_MAX_ATTEMPTS = env_int("CHANNEL_SEND_MAX_ATTEMPTS", 5, minimum=1)
CHANNEL_SEND_BACKOFF_SECONDS = env_float("CHANNEL_SEND_BACKOFF_SECONDS", 2.0, minimum=0.0)
CHANNEL_SEND_BACKOFF_MAX_SECONDS = env_float("CHANNEL_SEND_BACKOFF_MAX_SECONDS", 60.0, minimum=0.0)
CHANNEL_SEND_RETRY_AFTER_MAX_SECONDS = env_float("CHANNEL_SEND_RETRY_AFTER_MAX_SECONDS", 300.0, minimum=0.0)
# How long a Telegram secret verified by the full path is remembered by a web process, so the
# next updates skip the lookup (the insert still checks the secret against the database).
CHANNEL_VERIFIED_ROUTE_SECONDS = env_float("CHANNEL_VERIFIED_ROUTE_SECONDS", 300.0, minimum=0.0)
# Conversations: how many earlier messages (user and agent, oldest first) go with each prompt in
# `metadata.history`; 0 sends none (the contextId is still kept).
CHANNEL_HISTORY_MESSAGES = env_int("CHANNEL_HISTORY_MESSAGES", 10, minimum=0)
# Telegram "typing…": one sendChatAction every this many seconds while the agent thinks.
CHANNEL_TYPING_INTERVAL_SECONDS = env_float("CHANNEL_TYPING_INTERVAL_SECONDS", 4.0, minimum=0.5)

# --- Plugins and templates ---------------------------------------------------------------------
GITHUB_API_BASE_URL = env_str("GITHUB_API_BASE_URL", "https://api.github.com").rstrip("/")
GITHUB_ARCHIVE_BASE_URL = env_str("GITHUB_ARCHIVE_BASE_URL", "https://codeload.github.com").rstrip("/")
PLUGINS_DIR = Path(env_str("PLUGINS_DIR", str(BASE_DIR / "plugins")))
PLUGIN_STORAGE_DIR = Path(env_str("PLUGIN_STORAGE_DIR", str(VAR_DIR / "plugins")))
PLUGIN_FETCH_TIMEOUT_SECONDS = env_int("PLUGIN_FETCH_TIMEOUT_SECONDS", 300, minimum=1)
PLUGIN_MAX_TREE_BYTES = env_int("PLUGIN_MAX_TREE_BYTES", 104857600, minimum=1)
TEMPLATES_DIR = Path(env_str("TEMPLATES_DIR", str(BASE_DIR / "workspace-templates")))
ORG_TEMPLATES_DIR = Path(env_str("ORG_TEMPLATES_DIR", str(BASE_DIR / "org-templates")))
# Environment variables an org.yaml `${VAR}` may read besides its folder's .env: names or
# `PREFIX_*` patterns, comma-separated. The service's own settings never expand.
ORG_IMPORT_ENV_ALLOW = env_list("ORG_IMPORT_ENV_ALLOW")

# --- Background jobs (common.outbox) --------------------------------------------------------------
# A job whose task was published but not finished is published again this long after its task
# started (or was published): longer than any task takes (the A2A timeout, a plugin fetch).
OUTBOX_LEASE_SECONDS = env_int("OUTBOX_LEASE_SECONDS", max(300, A2A_TIMEOUT_SECONDS + 60), minimum=1)
# The relay wakes on NOTIFY (PostgreSQL); it also looks every this many seconds (SQLite: only this).
OUTBOX_POLL_SECONDS = env_float("OUTBOX_POLL_SECONDS", 1.0, minimum=0.01)
# Rows published per kind and per pass (one transaction each).
OUTBOX_BATCH_SIZE = env_int("OUTBOX_BATCH_SIZE", 500, minimum=1)
# Jobs that wait on a network peer (runs, chat messages, sends, notices) travel this many rows to
# a message when several are due at once (one message per row costs the relay ~1 ms).
OUTBOX_MESSAGE_ROWS = env_int("OUTBOX_MESSAGE_ROWS", 20, minimum=1)
# A task that lost its database connection is published again after this many seconds.
OUTBOX_RETRY_SECONDS = env_float("OUTBOX_RETRY_SECONDS", 2.0, minimum=0.0)

# --- Celery -------------------------------------------------------------------------------------
# The filesystem transport ignores the host, but kombu warns "No hostname was supplied" on every
# connection whose URL has none, so the embedded default names one. (Celery reads a
# CELERY_BROKER_URL variable itself, before these settings: set by hand, write it the same way.)
FILESYSTEM_BROKER_URL = "filesystem://localhost/"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or env_str("REDIS_URL") or FILESYSTEM_BROKER_URL
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery-broker"
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": A2A_TIMEOUT_SECONDS + 3600}
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat entries are declared here and stored by django-celery-beat, so operators see them in the
# admin console. Apps add their periodic tasks below.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}
# Schedules: the dispatcher turns due schedules into runs (the relay publishes them). A tick that waited longer than one period is dropped (the next one does the same work).
CELERY_BEAT_SCHEDULE["schedules.dispatch_due"] = {
    "task": "schedules.dispatch_due",
    "schedule": float(SCHEDULER_TICK_SECONDS),
    "options": {"expires": float(SCHEDULER_TICK_SECONDS)},
}
# The scheduler's ticks have their own queue, so a backlog of runs on the default queue never
# holds them back (a worker started without -Q consumes every queue listed here, in turn).
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Agent deliveries and platform calls (the tasks that wait on a network peer) go to the `agents`
# queue, served by the Procfile's I/O worker (`-P gevent`: hundreds of calls in flight per
# process); everything else (plugin installs, imports, sweeps) stays on the prefork worker
# (`-X agents`), so neither starves the other.
AGENT_QUEUE = "agents"
AGENT_TASKS = (
    "schedules.execute_run",
    "schedules.execute_runs",
    "channels.process_inbound",
    "approvals.notify_agent",
    # Calls to the chat platforms wait on a network peer too.
    "channels.send_message",
    "channels.delete_telegram_webhook",
    "approvals.post_to_chats",
    "approvals.refresh_chats",
    "approvals.sync_chat_post",
    "channels.run_cleanup",
)
CELERY_TASK_QUEUES = (
    Queue("celery", routing_key="celery"),
    Queue("scheduler", routing_key="scheduler"),
    Queue(AGENT_QUEUE, routing_key=AGENT_QUEUE),
)
CELERY_TASK_ROUTES = {
    "schedules.dispatch_due": {"queue": "scheduler"},
    **{name: {"queue": AGENT_QUEUE} for name in AGENT_TASKS},
}
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Metrics and health ----------------------------------------------------------------------------
# `GET /metrics` (Prometheus text format). With METRICS_TOKEN set, a scrape must send it as a
# bearer token; unset, only clients on the loopback interface (not through a proxy) may scrape.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# prometheus_client's multiprocess mode: every web, worker and beat process of one host writes its
# counters here and a scrape sums them. It must be shared by those processes, wiped before they
# start (`make run` does; see docs/operations.md), and known before prometheus_client is imported.
PROMETHEUS_MULTIPROC_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)

# --- Retention ----------------------------------------------------------------------------------------
# Finished history is deleted by `housekeeping.prune_history` (Beat, every RETENTION_PRUNE_SECONDS)
# in batches of RETENTION_BATCH_SIZE rows, one short transaction each. Pending work never goes.
SCHEDULE_RUNS_KEEP_DAYS = env_int("SCHEDULE_RUNS_KEEP_DAYS", 90, minimum=1)
SCHEDULE_RUNS_KEEP_PER_SCHEDULE = env_int("SCHEDULE_RUNS_KEEP_PER_SCHEDULE", 1000, minimum=1)
CHANNEL_MESSAGES_KEEP_DAYS = env_int("CHANNEL_MESSAGES_KEEP_DAYS", 90, minimum=1)
JOBS_KEEP_DAYS = env_int("JOBS_KEEP_DAYS", 30, minimum=1)
# Decided or expired approvals and their audit trail: kept longer, they are the audit record.
APPROVALS_KEEP_DAYS = env_int("APPROVALS_KEEP_DAYS", 365, minimum=1)
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 1000, minimum=1)
RETENTION_PRUNE_SECONDS = env_int("RETENTION_PRUNE_SECONDS", 3600, minimum=60)
CELERY_BEAT_SCHEDULE["housekeeping.prune_history"] = {
    "task": "housekeeping.prune_history",
    "schedule": float(RETENTION_PRUNE_SECONDS),
    "options": {"expires": float(RETENTION_PRUNE_SECONDS)},
}

# --- Approvals ------------------------------------------------------------------------------------
# How often Beat marks pending approvals past `expires_at` as expired (reads never wait for it).
APPROVAL_SWEEP_SECONDS = env_int("APPROVAL_SWEEP_SECONDS", 60, minimum=1)
# Notifying the requesting agent: retries on transient failures, with exponential backoff.
APPROVAL_NOTIFY_MAX_RETRIES = env_int("APPROVAL_NOTIFY_MAX_RETRIES", 8, minimum=0)
APPROVAL_NOTIFY_RETRY_SECONDS = env_int("APPROVAL_NOTIFY_RETRY_SECONDS", 30, minimum=0)
CELERY_BEAT_SCHEDULE["approvals-expire-due"] = {
    "task": "approvals.expire_due",
    "schedule": float(APPROVAL_SWEEP_SECONDS),
}

# --- REST framework ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tokens.authentication.BearerTokenAuthentication",
        "tokens.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["access.permissions.AdminAuth"],
    "DEFAULT_THROTTLE_CLASSES": ["tokens.throttling.WorkspaceTokenRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.CursorLinkPagination",
    "DEFAULT_FILTER_BACKENDS": ["common.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_METADATA_CLASS": "common.metadata.SchemaPointerMetadata",
    "EXCEPTION_HANDLER": "common.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Integrations API",
    "DESCRIPTION": (
        "Schedules, channels, plugins, tokens, templates, bundles and approvals for the "
        "workspaces (AI agents) of an organisation. Errors always have the body "
        '`{"error", "code", "details"}`; see docs/errors.md.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX_TRIM": False,
    "SORT_OPERATIONS": False,
    "ENUM_NAME_OVERRIDES": {
        "ApprovalStatusEnum": "approvals.models.ApprovalStatus.choices",
    },
    "PREPROCESSING_HOOKS": ["common.schema.drop_trailing_slash_twins"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.schema.add_error_responses",
    ],
}

# --- Logging ----------------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# `plain` (one human-readable line) or `json` (one JSON object per line, for log collectors).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "common.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "common.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "urllib3": {"level": "WARNING"},
    },
}

# Cache: holds the per-token request counts (WORKSPACE_TOKEN_RATE), which must be shared by
# every web process, so it is Redis (Django's own backend) whenever the broker is Redis. The
# embedded default (filesystem broker) keeps a per-process locmem cache.
CACHE_URL = env_str("CACHE_URL") or (
    CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else ""
)
if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "integrations",
            # A cache outage must not stall requests for long: fail fast.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
