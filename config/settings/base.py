"""Settings shared by every environment; everything variable comes from the environment.

See .env.example for the full list of variables and their meaning.
"""

import ipaddress
import ssl
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env
from config.storage import media_storage

DEBUG = env.bool("DEBUG", default=False)

# No default here: local.py falls back to a development key, test.py has its own, and production.py
# refuses to start without a strong one (whatever DEBUG says: production refuses DEBUG too).
SECRET_KEY = env("SECRET_KEY", default="")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "csp",
    "django_htmx",
    "django_celery_beat",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from our static files (no CDN)
    "inbox",
    "connections",
    "sync",
    "api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's language (Accept-Language) among LANGUAGES; a user's own choice wins (inbox.languages).
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Staff in /admin/ see every tenant; other plain queries of tenant-scoped models fail closed (inbox.tenancy).
    "inbox.middleware.StaffAdminScopeMiddleware",
    # The viewer's time zone for every page (inbox.timezones); tenant pages get theirs from tenant_view.
    "inbox.timezones.TimeZoneMiddleware",
    # The language the user chose on their preferences page, if any; tenant pages get it from tenant_view.
    "inbox.languages.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last: turns a login refused for too many failures into the lockout page (inbox.views.login_locked_out).
    "axes.middleware.AxesMiddleware",
]

# --- Content Security Policy (django-csp) --------------------------------------------------------
# Scripts, styles and sockets from this origin only; no inline script, style or event handler anywhere
# (htmx is told not to inject its indicator <style> and not to eval: templates/base.html's htmx-config).
# The browser tests fail on any violation (tests/browser/conftest.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],  # CSP 3: 'self' covers ws:/wss: to this host (the inbox socket)
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

ROOT_URLCONF = "config.urls"
# Error pages and reports never show credentials, URLs' passwords included (config/errors.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.errors.SafeSettingsReporterFilter"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- Database -------------------------------------------------------------------------------
# Embedded default: a SQLite file beside manage.py. WAL + a busy timeout + IMMEDIATE transactions
# let web, worker and runner processes share the one file without "database is locked" errors.
DATABASE_URL = env("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
else:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "config.postgresql"  # Django's, timestamps parsed in C (config/postgresql)
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A peer that hangs (a silent partition drops packets instead of refusing them) must turn into an
    # error within seconds, never a hang: connect timeout, TCP keepalives for idle connections, a
    # TCP user timeout for unacknowledged writes (libpq, Linux), and a statement timeout.
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": env.int("DB_CONNECT_TIMEOUT", default=5),
        "keepalives": 1,
        "keepalives_idle": env.int("DB_KEEPALIVES_IDLE", default=10),
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": env.int("DB_TCP_USER_TIMEOUT_MS", default=15000),
        "options": f"-c statement_timeout={env.int('DB_STATEMENT_TIMEOUT_MS', default=120000)}",
        **DATABASES["default"].get("OPTIONS", {}),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and Channels layer --------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": env("CHANNEL_LAYER_BACKEND", default="channels_redis.pubsub.RedisPubSubChannelLayer"),
        # Redis pub/sub ignores the database number: the prefix keeps, say, the test suite's groups apart
        # from a `make run` on the same Redis.
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env("CHANNEL_LAYER_PREFIX", default="asgi")},
    }
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
# kombu's Redis transport with the one change that keeps a worker alive through a Redis blip
# (config/broker.py). A rediss:// URL verifies the server's certificate unless told otherwise.
if CELERY_BROKER_URL.split("://", 1)[0] in ("redis", "rediss"):
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"
    if CELERY_BROKER_URL.startswith("rediss://"):
        CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_TIME_LIMIT = 10 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 9 * 60
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis that is down or hangs costs a publisher seconds, never forever (the runner's journal never
# waits on it at all: see sync/journal.py).
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 3, "socket_keepalive": True}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
# Keep Django's LOGGING (JSON lines) in workers instead of Celery's own text format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A worker process keeps its database connection between tasks (config/celery.py): Celery's Django fixup would
# close it after every task (a backend started per task), now only every CELERY_DB_REUSE_MAX tasks; the worker
# closes it itself after a task that failed or saw a database error, and once it is WORKER_CONN_MAX_AGE seconds old.
CELERY_DB_REUSE_MAX = 1000
WORKER_CONN_MAX_AGE = env.int("WORKER_CONN_MAX_AGE", default=300)
CELERY_BEAT_SCHEDULER = "config.beat:Scheduler"  # the database scheduler, marking its ticks (config/heartbeats.py)
CELERY_TIMEZONE = "UTC"
# Queue names are prefixed so the test suite can use its own queues on the same Redis.
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="celery")

# --- WhatsApp -----------------------------------------------------------------------------------
WHATSAPP_TRANSPORT = env("WHATSAPP_TRANSPORT", default="simulator")


def whatsmeow_store_for(database_url: str) -> str:
    """whatsmeow keeps its own tables: a database beside the project's (``<name>_whatsmeow``), never
    Django's own; for SQLite a file beside manage.py.

    The session store holds every linked number's keys, so its connection must not cross a network in
    clear. The project URL's query (sslmode, sslrootcert, ...: whatsmeow's driver, lib/pq, reads the same
    names as libpq) is kept as it is. Without an sslmode: ``disable`` when the server is on this machine
    (loopback or a Unix socket; lib/pq would otherwise insist on TLS that a laptop's PostgreSQL lacks),
    else ``require``, whatever the driver's default. A server on another machine without TLS must be
    named with ``sslmode=disable`` on purpose (in DATABASE_URL or WHATSMEOW_STORE).
    """
    parts = urlsplit(database_url)
    if not parts.scheme.startswith("postgres"):
        return str(BASE_DIR / "whatsmeow.sqlite3")
    name = parts.path.lstrip("/") or "inbox"
    query = parts.query
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "sslmode" not in params:  # the original query stays byte for byte; only sslmode is added
        sslmode = "disable" if _is_local_postgres(parts.hostname, params.get("host")) else "require"
        query = f"{query}&sslmode={sslmode}" if query else f"sslmode={sslmode}"
    return parts._replace(path=f"/{name}_whatsmeow", query=query).geturl()


def _is_local_postgres(hostname: str | None, host_param: str | None) -> bool:
    host = host_param or hostname or ""
    if not host or host.startswith("/") or host == "localhost":  # no host: libpq's Unix socket
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


WHATSMEOW_STORE = env("WHATSMEOW_STORE", default=whatsmeow_store_for(DATABASE_URL))
# Where the runner spools events when the database is unreachable (replayed when it is back).
EVENT_SPOOL_DIR = env("EVENT_SPOOL_DIR", default=str(BASE_DIR / "var" / "spool"))

RUNNER_HEARTBEAT_SECONDS = env.float("RUNNER_HEARTBEAT_SECONDS", default=15.0)
RUNNER_LEASE_SECONDS = env.float("RUNNER_LEASE_SECONDS", default=30.0)
RUNNER_RECONCILE_SECONDS = env.float("RUNNER_RECONCILE_SECONDS", default=10.0)
# Runner tuning (connections/runner.py; docs/runner.md): sessions per child process, reconnect backoff
# (base doubling to cap, with jitter) and when to give up; children are recycled after this many connect
# attempts (each neonize attempt leaks a store connection); outbox sends are retried this many times.
RUNNER_SESSIONS_PER_CHILD = env.int("RUNNER_SESSIONS_PER_CHILD", default=25)
RUNNER_BACKOFF_BASE_SECONDS = env.float("RUNNER_BACKOFF_BASE_SECONDS", default=1.0)
RUNNER_BACKOFF_CAP_SECONDS = env.float("RUNNER_BACKOFF_CAP_SECONDS", default=300.0)
RUNNER_MAX_RECONNECT_ATTEMPTS = env.int("RUNNER_MAX_RECONNECT_ATTEMPTS", default=30)
RUNNER_CHILD_MAX_CONNECT_ATTEMPTS = env.int("RUNNER_CHILD_MAX_CONNECT_ATTEMPTS", default=20)
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=5)
# Liveness (docs/runner.md, "Faults"): a received event not committed to the journal within this many
# seconds is spooled (fsync) by the session's callback; a child that has not answered a heartbeat for
# RUNNER_CHILD_ANSWER_SECONDS, or whose command loop or journal thread has been stuck for
# RUNNER_CHILD_STUCK_SECONDS, is killed and its sessions restarted; a session still "connecting" after
# RUNNER_CONNECT_TIMEOUT_SECONDS (RUNNER_PAIRING_TIMEOUT_SECONDS while pairing) is restarted.
RUNNER_JOURNAL_WAIT_SECONDS = env.float("RUNNER_JOURNAL_WAIT_SECONDS", default=2.0)
RUNNER_CHILD_ANSWER_SECONDS = env.float("RUNNER_CHILD_ANSWER_SECONDS", default=20.0)
RUNNER_CHILD_STUCK_SECONDS = env.float("RUNNER_CHILD_STUCK_SECONDS", default=120.0)
RUNNER_CONNECT_TIMEOUT_SECONDS = env.float("RUNNER_CONNECT_TIMEOUT_SECONDS", default=60.0)
RUNNER_PAIRING_TIMEOUT_SECONDS = env.float("RUNNER_PAIRING_TIMEOUT_SECONDS", default=240.0)
# At most this many retiring children (they keep their leaked store connections until they exit):
# past it, the oldest one's remaining sessions move to a fresh child (a brief reconnect).
RUNNER_MAX_RETIRING_CHILDREN = env.int("RUNNER_MAX_RETIRING_CHILDREN", default=2)
# Beat's journal safety net enqueues rows pending longer than this (their enqueue failed or was lost).
JOURNAL_SAFETY_NET_SECONDS = env.float("JOURNAL_SAFETY_NET_SECONDS", default=30.0)
# Live sweeps that run side by side (PostgreSQL; sync/sweep.py), each over the numbers whose id modulo this is
# its shard: one sweep's store -> render -> publish is serial, so with one a flood queues behind it while the
# other worker process idles. Match the worker's concurrency (2 in the Procfile).
LIVE_SWEEP_SHARDS = env.int("LIVE_SWEEP_SHARDS", default=2)
# How long a live sweep waits after a small round before it looks for more (sync/sweep.py): fewer, fuller rounds
# in a flood. 0: rounds back to back.
LIVE_SWEEP_PAUSE_SECONDS = env.float("LIVE_SWEEP_PAUSE_SECONDS", default=0.03)
# Journal retention (sync/retention.py): processed raw events older than this many days are pruned by beat,
# JOURNAL_PRUNE_BATCH rows a statement; pending, failed and quarantined rows are kept. 0 keeps everything.
JOURNAL_RETENTION_DAYS = env.int("JOURNAL_RETENTION_DAYS", default=90)
JOURNAL_PRUNE_BATCH = env.int("JOURNAL_PRUNE_BATCH", default=5000)
# Purges (inbox/deletion.py, docs/backups.md "Safe deletes"): rows a batch (one short transaction each), and
# how long one run of purge_task works before it queues itself again.
PURGE_BATCH = env.int("PURGE_BATCH", default=2000)
PURGE_TIME_BUDGET_SECONDS = env.float("PURGE_TIME_BUDGET_SECONDS", default=240.0)
# Media retention (inbox/retention.py): how many media files beat removes in one run (per batch of 500).
MEDIA_RETENTION_BATCH = env.int("MEDIA_RETENTION_BATCH", default=500)
# Scheduled backups (inbox/snapshot/backups.py, docs/backups.md): beat exports every tenant daily into
# BACKUP_DIR/<slug>/, keeping the newest BACKUP_KEEP files of each; a tenant whose last good backup is older
# than BACKUP_MAX_AGE_HOURS (or whose last backup failed) is a warning on /health/detailed and /ops/ and a
# staff alert. BACKUPS_ENABLED=false stops the schedule's work (and the warnings) without editing beat.
BACKUPS_ENABLED = env.bool("BACKUPS_ENABLED", default=True)
BACKUP_DIR = env("BACKUP_DIR", default=str(BASE_DIR / "var" / "backups"))
BACKUP_KEEP = env.int("BACKUP_KEEP", default=7)
# Whether each backup carries the stored media files (each backup then holds all of them: BACKUP_KEEP copies);
# false: the media rows only, the files being in MEDIA_ROOT's (or the bucket's) own backups.
BACKUP_WITH_MEDIA = env.bool("BACKUP_WITH_MEDIA", default=True)
BACKUP_MAX_AGE_HOURS = env.float("BACKUP_MAX_AGE_HOURS", default=26.0)
# The largest "Export chat" file (.txt or .zip) the conversation page accepts (manage.py import_chat_export has no limit).
CHAT_EXPORT_MAX_BYTES = env.int("CHAT_EXPORT_MAX_BYTES", default=64_000_000)
# The simulator's fake WhatsApp server keeps its state (what it sent, what is waiting for an ack) here.
SIMULATOR_REDIS_URL = env("SIMULATOR_REDIS_URL", default=REDIS_URL)
SIMULATOR_QR_SECONDS = env.float("SIMULATOR_QR_SECONDS", default=0.6)

HEALTH_TOKEN = env("HEALTH_TOKEN", default="")
# Self-service numbers: how many (not deleted) numbers a tenant may add, and which transports it may pick.
TENANT_MAX_NUMBERS = env.int("TENANT_MAX_NUMBERS", default=10)
NUMBER_TRANSPORTS = env.list("NUMBER_TRANSPORTS", default=["simulator", "neonize"])
# /health/detailed (docs/operations.md): how long a worker has to answer a ping, and when beat's last tick
# or a runner's last mark counts as stale (a runner's default: two lease periods).
HEALTH_WORKER_PING_SECONDS = env.float("HEALTH_WORKER_PING_SECONDS", default=1.0)
HEALTH_BEAT_STALE_SECONDS = env.float("HEALTH_BEAT_STALE_SECONDS", default=60.0)
HEALTH_RUNNER_STALE_SECONDS = env.float("HEALTH_RUNNER_STALE_SECONDS", default=0.0) or None
# Alerts (docs/operations.md): e-mail through Django's mail backend (console unless EMAIL_URL says otherwise),
# the tenant's webhook with retries, and the watchdog's thresholds.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="alerts@inbox.localhost")
# The site's address for links in e-mails (mention notifications), e.g. https://inbox.example.com; empty: paths only.
SITE_URL = env("SITE_URL", default="")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)
ALERT_WEBHOOK_RETRY_SECONDS = env.float("ALERT_WEBHOOK_RETRY_SECONDS", default=10.0)
# URLs a tenant typed are called only on public addresses (inbox/outbound.py); true for development and
# the test suite's local receivers.
OUTBOUND_ALLOW_PRIVATE_ADDRESSES = env.bool("OUTBOUND_ALLOW_PRIVATE_ADDRESSES", default=False)
WATCHDOG_INTERVAL_SECONDS = env.float("WATCHDOG_INTERVAL_SECONDS", default=30.0)
WATCHDOG_NUMBER_DOWN_SECONDS = env.float("WATCHDOG_NUMBER_DOWN_SECONDS", default=300.0)
# How long Redis/workers/beat/runners must stay down before staff are alerted (start-up, restarts).
WATCHDOG_PLATFORM_GRACE_SECONDS = env.float("WATCHDOG_PLATFORM_GRACE_SECONDS", default=60.0)
# A number whose heartbeat is older than this while it should be connected is reported stale.
HEALTH_HEARTBEAT_STALE_SECONDS = env.float("HEALTH_HEARTBEAT_STALE_SECONDS", default=90.0)
# A live socket re-checks its session and membership before delivering a fragment when its last check is
# older than this (inbox/consumers.py; logout and membership changes also make it re-check at once).
LIVE_ACCESS_RECHECK_SECONDS = env.float("LIVE_ACCESS_RECHECK_SECONDS", default=5.0)

# --- REST API and webhooks (api app, docs/api.md) -------------------------------------------------
# Token-authenticated only: DRF's views are exempt from session CSRF, and no session authentication is
# configured, so a browser's cookies never authenticate an API call (nothing for a cross-site form to ride).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.ApiTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.HasApiToken"],
    "DEFAULT_THROTTLE_CLASSES": ["api.auth.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "api.views.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Inbox API",
    "DESCRIPTION": "A tenant's numbers, contacts, conversations, messages and alerts. Authenticate with "
                   "`Authorization: Bearer <token>` (tokens: the tenant's API page). See docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "MessageStatusEnum": "inbox.models.Message.Status",
        "ConversationStatusEnum": "inbox.models.Conversation.Status",
        "NumberStatusEnum": "connections.models.Connection.Status",
        "ContactKindEnum": "inbox.models.Contact.Kind",
        "IdentityKindEnum": "inbox.models.ContactIdentity.Kind",
        "AlertKindEnum": "inbox.models.Alert.Kind",
    },
}
# Requests per token (DRF's rate syntax: "600/min"), counted in Redis so every web process shares them.
API_TOKEN_RATE = env("API_TOKEN_RATE", default="600/min")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "api",
            "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2}},
}
# Outbound webhooks (api/webhooks.py): request timeout, retry delays (base doubling to the cap, config.backoff),
# attempts before a delivery is given up, and consecutive failed attempts before an endpoint is disabled
# (with an alert to the tenant).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5.0)
WEBHOOK_RETRY_BASE_SECONDS = env.float("WEBHOOK_RETRY_BASE_SECONDS", default=10.0)
WEBHOOK_RETRY_CAP_SECONDS = env.float("WEBHOOK_RETRY_CAP_SECONDS", default=3600.0)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=10)
WEBHOOK_DISABLE_AFTER_FAILURES = env.int("WEBHOOK_DISABLE_AFTER_FAILURES", default=50)
# Fan-out: deliveries are split into WEBHOOK_PARTITIONS partitions by their ordering key (a conversation's
# events are always in one), each sent by one worker at a time, so several conversations go out at once
# while each stays in order. Set the same value on every web, worker and runner process. An endpoint that
# opted into batches gets at most WEBHOOK_BATCH_MAX events per request.
WEBHOOK_PARTITIONS = env.int("WEBHOOK_PARTITIONS", default=4)
WEBHOOK_BATCH_MAX = env.int("WEBHOOK_BATCH_MAX", default=100)
# Seconds a delivery task waits after the first event recorded for its partition, so events of a flood
# go out together (fewer, fuller requests: less CPU beside the live inbox) at the cost of that latency.
WEBHOOK_COALESCE_SECONDS = env.float("WEBHOOK_COALESCE_SECONDS", default=0.3)
# The queue of the delivery tasks: the default queue unless a deployment runs a worker of its own for
# webhooks (``celery -A config worker -Q <WEBHOOK_QUEUE>``), so a slow receiver never holds the worker
# slots that process the live inbox (docs/api.md).
WEBHOOK_QUEUE = env("WEBHOOK_QUEUE", default=CELERY_TASK_DEFAULT_QUEUE)
# The queue of the per-connection journal processor (sync.tasks.process_journal_task: history syncs, catch-ups,
# retries, search backlogs) and of journal replays: the default queue unless a deployment runs a worker of its
# own for them (``celery -A config worker -Q <JOURNAL_QUEUE>``), below the live inbox's CPU priority
# (JOURNAL_WORKER_NICE), so a 100,000-message history sync does not hold back the live sweep's messages
# (docs/runner.md). On PostgreSQL plain live messages never go there: the live sweep (default queue) stores them.
JOURNAL_QUEUE = env("JOURNAL_QUEUE", default=CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_ROUTES = {
    "api.tasks.deliver_webhooks_task": {"queue": WEBHOOK_QUEUE},
    "sync.tasks.process_journal_task": {"queue": JOURNAL_QUEUE},
    "sync.tasks.replay_journal_task": {"queue": JOURNAL_QUEUE},
}
# The nice value a worker for WEBHOOK_QUEUE alone (a queue of its own) gives itself as it starts (config/priority.py):
# the live inbox's processes get the CPU first. 0 leaves it alone.
WEBHOOK_WORKER_NICE = env.int("WEBHOOK_WORKER_NICE", default=19)
# The same for a worker of JOURNAL_QUEUE alone (config/priority.py): above the webhooks (a history sync is
# what an agent waits for next), below the live inbox. 0 leaves it alone.
JOURNAL_WORKER_NICE = env.int("JOURNAL_WORKER_NICE", default=10)
# Retention (api.retention, beat "api: retention" hourly, in batches): delivered webhook events are kept
# 7 days, those given up 30 (a person may still want to redeliver them or read why), pending ones until
# they are sent or given up. Idempotency keys are kept 7 days: a retry with the same key after that is a
# new send.
WEBHOOK_DELIVERED_RETENTION_DAYS = env.int("WEBHOOK_DELIVERED_RETENTION_DAYS", default=7)
WEBHOOK_FAILED_RETENTION_DAYS = env.int("WEBHOOK_FAILED_RETENTION_DAYS", default=30)
IDEMPOTENCY_KEY_RETENTION_DAYS = env.int("IDEMPOTENCY_KEY_RETENTION_DAYS", default=7)
API_RETENTION_BATCH = env.int("API_RETENTION_BATCH", default=5000)

# --- Auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Login throttling (django-axes) ---------------------------------------------------------------
# /login/ and /admin/login/ (both authenticate with the request): after LOGIN_FAILURE_LIMIT failures for
# one username from one address, that pair is locked for LOGIN_LOCKOUT_MINUTES (a failure during the
# lockout restarts it). The login page says so; a platform admin lifts it in Django admin (Axes > Access
# attempts, "Locked out: yes", delete) or with `manage.py axes_reset_username <name>`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before any password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("LOGIN_THROTTLING", default=True)
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "inbox.views.login_locked_out"
AXES_HTTP_RESPONSE_CODE = 429
AXES_CLIENT_IP_CALLABLE = "config.proxy.client_ip"
AXES_DISABLE_ACCESS_LOG = True  # lockouts need the attempts table only; a log of every login would grow forever
# A TLS-terminating proxy in front of daphne sets X-Forwarded-Proto and appends the client's address to
# X-Forwarded-For; only then are these headers believed (production.py, config/proxy.py).
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "tenant_picker"
LOGOUT_REDIRECT_URL = "login"

# Languages of the UI (docs/i18n.md): English, the default, and Brazilian Portuguese. A user's own choice
# (UserProfile.language) wins over the browser's Accept-Language; nobody's choice: LANGUAGE_CODE.
LANGUAGE_CODE = env("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("pt-br", "Português (Brasil)")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
# Dates and numbers follow the active language (Django 5.2 always localizes: USE_L10N is gone): Django's
# own pt_BR formats. No thousand separator: ids are printed into URLs and element ids.
USE_TZ = True
# A phone number typed without "+" and country code is read in this region (inbox.new_conversation).
PHONE_DEFAULT_REGION = env("PHONE_DEFAULT_REGION", default="BR")
# The zone of a tenant that has not chosen one (inbox.timezones); users may override their tenant's.
TENANT_DEFAULT_TIME_ZONE = env("TENANT_DEFAULT_TIME_ZONE",
                               default="America/Sao_Paulo" if LANGUAGE_CODE.lower() == "pt-br" else TIME_ZONE)

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": media_storage(env),  # MEDIA_STORAGE: filesystem (default) or s3 (config/storage.py)
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Media (docs/media.md) ------------------------------------------------------------------------
# Received and sent files go through Django's default storage: files under MEDIA_ROOT by default, or an
# S3-compatible bucket with MEDIA_STORAGE=s3 and the MEDIA_S3_* variables (config/storage.py). Never served
# from a public URL (MEDIA_URL is unused: every file goes through the access-checked view).
MEDIA_ROOT = env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))
MEDIA_URL = "/media-is-never-served-directly/"
# Size limits per kind, close to WhatsApp's own by default (received files over them are marked failed;
# attachments over them are refused with a form error). Bytes.
MEDIA_MAX_BYTES = {
    "image": env.int("MEDIA_MAX_IMAGE_BYTES", default=16 * 1024 * 1024),
    "sticker": env.int("MEDIA_MAX_STICKER_BYTES", default=1024 * 1024),
    "audio": env.int("MEDIA_MAX_AUDIO_BYTES", default=16 * 1024 * 1024),
    "video": env.int("MEDIA_MAX_VIDEO_BYTES", default=64 * 1024 * 1024),
    "document": env.int("MEDIA_MAX_DOCUMENT_BYTES", default=100 * 1024 * 1024),
}
# The runner fetches received media in the background: at most this many files per second per child
# process, retried with backoff (base doubling to cap) and given up after MEDIA_FETCH_MAX_ATTEMPTS.
MEDIA_FETCH_PER_SECOND = env.float("MEDIA_FETCH_PER_SECOND", default=5.0)
MEDIA_FETCH_BATCH = env.int("MEDIA_FETCH_BATCH", default=10)
MEDIA_FETCH_MAX_ATTEMPTS = env.int("MEDIA_FETCH_MAX_ATTEMPTS", default=5)
MEDIA_FETCH_BACKOFF_BASE_SECONDS = env.float("MEDIA_FETCH_BACKOFF_BASE_SECONDS", default=30.0)
MEDIA_FETCH_BACKOFF_CAP_SECONDS = env.float("MEDIA_FETCH_BACKOFF_CAP_SECONDS", default=3600.0)
MEDIA_THUMBNAIL_PIXELS = env.int("MEDIA_THUMBNAIL_PIXELS", default=320)
# Set to nginx's internal location for MEDIA_ROOT (e.g. "/protected-media/") to have nginx send the bytes
# (X-Accel-Redirect) after the access-checked view said yes; empty: the view streams them itself.
MEDIA_X_ACCEL_PREFIX = env("MEDIA_X_ACCEL_PREFIX", default="")
if MEDIA_X_ACCEL_PREFIX and STORAGES["default"]["BACKEND"] != "django.core.files.storage.FileSystemStorage":
    raise ImproperlyConfigured("MEDIA_X_ACCEL_PREFIX serves files from MEDIA_ROOT: it needs MEDIA_STORAGE=filesystem")
# ffmpeg (optional: inbox/transcode.py): video posters, and attached audio converted to OGG/Opus voice
# notes. Not found: no posters, audio sent as it is (logged once). Each run is cut off after the timeout.
FFMPEG_BINARY = env("FFMPEG_BINARY", default="ffmpeg")
FFMPEG_TIMEOUT_SECONDS = env.float("FFMPEG_TIMEOUT_SECONDS", default=30.0)
# Stored files no media row names (a whole tenant deleted by cascade, a crash between storing a file and
# committing its row) are removed by the daily sweep once they are older than this (inbox.media.sweep_orphan_files).
MEDIA_ORPHAN_GRACE_SECONDS = env.int("MEDIA_ORPHAN_GRACE_SECONDS", default=24 * 3600)

# --- Logging: JSON lines on stderr, one object per line, for operators to grep -------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
    "loggers": {
        "inbox": {"level": LOG_LEVEL},
        "connections": {"level": LOG_LEVEL},
        "sync": {"level": LOG_LEVEL},
        "api": {"level": LOG_LEVEL},
        "config": {"level": LOG_LEVEL},  # worker.priority_lowered (config/celery.py), broker and beat warnings
        "django.request": {"level": "WARNING"},
        "celery": {"level": "INFO"},
    },
}
