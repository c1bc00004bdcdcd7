"""Settings for Appeals Copilot, read from the environment.

Every variable is listed, with its default, in the README's configuration table. The defaults
are the embedded quickstart: SQLite and a Celery broker on the local filesystem, no servers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from policies.safeguard.config import EngineConfig

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("APPEALS_VAR_DIR", BASE_DIR / "var"))


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


DEBUG = env_bool("DEBUG", False)


def _local_secret_key() -> str:
    """A key kept in VAR_DIR for a single-machine install; production sets SECRET_KEY."""
    import secrets

    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(50))
        os.replace(tmp, path)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY") or _local_secret_key()
ALLOWED_HOSTS = [
    h.strip() for h in env_str("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    "ninja",
    "django_htmx",
    "template_partials",
    "policies",
    "appeals",
    "reviewer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "reviewer.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: it turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "reviewer.urls"
WSGI_APPLICATION = "reviewer.wsgi.application"

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

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'appeals.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # Each test run gets its own database, so runs side by side on one server don't collide.
    DATABASES["default"]["TEST"] = {
        "NAME": env_str("TEST_DATABASE_NAME") or f"test_appeals_{os.getpid()}"
    }
else:
    # The web server and the workers share one file: wait on the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0

# The role that owns the tables and runs the migrations (README, "Security"). When set,
# `manage.py migrate` and `manage.py grant_runtime_role` connect with it, and DATABASE_URL names
# the runtime role that the web processes and workers use. Only the user and password may differ.
MIGRATION_DATABASE_URL = env_str("MIGRATION_DATABASE_URL")
MIGRATION_DATABASE = None
if MIGRATION_DATABASE_URL:
    MIGRATION_DATABASE = dj_database_url.parse(MIGRATION_DATABASE_URL)
    for _key in ("ENGINE", "HOST", "PORT", "NAME"):
        if MIGRATION_DATABASE.get(_key) != DATABASES["default"].get(_key):
            raise ImproperlyConfigured(
                "MIGRATION_DATABASE_URL must name the same database as DATABASE_URL (engine, "
                f"host, port and name); only the user and password differ. {_key}: "
                f"{MIGRATION_DATABASE.get(_key)!r} there, {DATABASES['default'].get(_key)!r} here"
            )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: a locked-out account is refused before its password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "reviewer" / "static"]


# Fetched media lives in its own storage, never under STATIC or any public URL: pages get it
# through an authenticated view only. Any Django storage backend works (MEDIA_STORAGE).
def _media_storage_options() -> dict:
    import json

    raw = env_str("MEDIA_STORAGE_OPTIONS")
    if not raw:
        return {"location": str(VAR_DIR / "media")}
    try:
        options = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"MEDIA_STORAGE_OPTIONS must be a JSON object: {error}"
        ) from None
    if not isinstance(options, dict):
        raise ImproperlyConfigured("MEDIA_STORAGE_OPTIONS must be a JSON object")
    return options


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "media": {
        "BACKEND": env_str("MEDIA_STORAGE", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": _media_storage_options(),
    },
}

# --- Sign-in and transport security ----------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# A working day by default, not Django's two weeks: a console left signed in overnight is not.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)

# Outside debug the console is HTTPS only: plain http is redirected, and browsers are told to
# remember that (HSTS). Behind a proxy that terminates TLS, set SECURE_PROXY_SSL_HEADER.
SECURE_SSL_REDIRECT = not DEBUG and env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"


def _proxy_ssl_header(raw: str) -> tuple[str, str] | None:
    """`X-Forwarded-Proto=https` → Django's ("HTTP_X_FORWARDED_PROTO", "https"); empty → None.

    Opt-in only: trusting the header without a proxy that overwrites it lets any client claim
    its request came over HTTPS.
    """
    if not raw:
        return None
    name, sep, value = raw.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER must look like X-Forwarded-Proto=https, not {raw!r}"
        )
    return "HTTP_" + name.strip().upper().replace("-", "_"), value.strip()


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env_str("SECURE_PROXY_SSL_HEADER"))

# Content Security Policy (django-csp): only this site's own scripts, styles and media; no inline
# script or style, no eval (htmx runs with allowEval off, see base.html), no framing, no plugins.
# Media is 'self' only: the reviewer's browser never fetches a platform's URL.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "media-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Login throttling (django-axes). Failures are counted per account, not per address: an office
# behind one NAT address shares it, and one person's typos must not lock out the whole office.
# The price is that anyone can lock an account for AXES_COOLOFF_MINUTES by guessing wrong; an
# administrator lifts it early with `manage.py axes_reset_username NAME`.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username"]
# axes warns that a lock without the address can be dodged by rotating User-Agents or cookies;
# a lock on the account alone cannot be, and per-address locks would shut out a whole office.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]
AXES_RESET_ON_SUCCESS = True
# The lock ends when the page says it does, however often someone keeps trying meanwhile.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "reviewer.lockout.locked_out"
AXES_VERBOSE = False

# --- Review workflow -----------------------------------------------------------------------
LEASE_SECONDS = env_int("LEASE_SECONDS", 600, minimum=30)
BULK_INTAKE_MAX_ITEMS = 1000
CONTENT_MAX_CHARS = 100_000

# --- Accountability -----------------------------------------------------------------------
# Key for the stable pseudonyms in exports (`--pseudonymise`); defaults to SECRET_KEY.
EXPORT_PSEUDONYM_KEY = env_str("EXPORT_PSEUDONYM_KEY")
CALLBACK_TIMEOUT_SECONDS = env_int("CALLBACK_TIMEOUT_SECONDS", 10, minimum=1)
# The callback outbox (appeals/disclosure/outbox.py): how often the sweep runs, how many attempts
# before giving up, and the backoff between them (doubling from the base, capped, jittered).
CALLBACK_SWEEP_SECONDS = env_int("CALLBACK_SWEEP_SECONDS", 30, minimum=1)
CALLBACK_MAX_ATTEMPTS = env_int("CALLBACK_MAX_ATTEMPTS", 9, minimum=1)
CALLBACK_RETRY_BASE_SECONDS = env_int("CALLBACK_RETRY_BASE_SECONDS", 30, minimum=1)
CALLBACK_RETRY_MAX_SECONDS = env_int("CALLBACK_RETRY_MAX_SECONDS", 3600, minimum=1)


# --- Media (appeals/media/): fetched on the server, never hot-linked -------------------------
def env_list(name: str, default: str) -> list[str]:
    return [part.strip() for part in env_str(name, default).split(",") if part.strip()]


MEDIA_FETCH_MAX_BYTES = env_int("MEDIA_FETCH_MAX_BYTES", 20 * 1024 * 1024, minimum=1024)
MEDIA_FETCH_TIMEOUT_SECONDS = env_int("MEDIA_FETCH_TIMEOUT_SECONDS", 15, minimum=1)
MEDIA_FETCH_MAX_REDIRECTS = env_int("MEDIA_FETCH_MAX_REDIRECTS", 3, minimum=0)
MEDIA_MAX_PIXELS = env_int("MEDIA_MAX_PIXELS", 40_000_000, minimum=1)
MEDIA_PREVIEW_GRAYSCALE = env_bool("MEDIA_PREVIEW_GRAYSCALE", True)
_media_types = ("image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "video/webm")
MEDIA_FETCH_ALLOWED_TYPES = env_list("MEDIA_FETCH_ALLOWED_TYPES", ",".join(_media_types))
if set(MEDIA_FETCH_ALLOWED_TYPES) - set(_media_types):
    raise ImproperlyConfigured(
        f"MEDIA_FETCH_ALLOWED_TYPES may list only {', '.join(_media_types)}, not "
        f"{', '.join(sorted(set(MEDIA_FETCH_ALLOWED_TYPES) - set(_media_types)))}"
    )
try:
    MEDIA_FETCH_ALLOWED_PORTS = [int(p) for p in env_list("MEDIA_FETCH_ALLOWED_PORTS", "80,443")]
except ValueError:
    raise ImproperlyConfigured(
        "MEDIA_FETCH_ALLOWED_PORTS must be port numbers, comma-separated"
    ) from None
# ADDRESS:PORT pairs exempt from the public-addresses-only rule (a platform's internal media host).
MEDIA_FETCH_ALLOW = env_list("MEDIA_FETCH_ALLOW", "")
try:
    from appeals.media.fetch import FetchPolicy as _FetchPolicy

    _FetchPolicy.parse_allow(MEDIA_FETCH_ALLOW)
except ValueError as _error:
    raise ImproperlyConfigured(f"MEDIA_FETCH_ALLOW: {_error}") from None
# Media sent with the item itself (base64 in JSON, or a multipart upload to /api/v1/items/upload):
# at most this many bytes of image or video; the type is read from the bytes.
MEDIA_UPLOAD_MAX_BYTES = env_int("MEDIA_UPLOAD_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
# Videos (appeals/media/video.py): frames sampled for the poster and the image classifiers, from
# at most the first MEDIA_VIDEO_MAX_SECONDS seconds.
MEDIA_VIDEO_FRAMES = env_int("MEDIA_VIDEO_FRAMES", 4, minimum=1)
MEDIA_VIDEO_MAX_SECONDS = env_int("MEDIA_VIDEO_MAX_SECONDS", 600, minimum=1)
# Image classifiers of the fast tier (appeals/triage/classifiers.py): "nudenet" (offline, ships
# in its wheel) and/or "transformers" (an image-classification model through transformers'
# pipeline: TRIAGE_IMAGE_MODEL, a hub id or a local folder, at TRIAGE_IMAGE_MODEL_REVISION).
TRIAGE_IMAGE_CLASSIFIERS = env_list("TRIAGE_IMAGE_CLASSIFIERS", "nudenet")
if set(TRIAGE_IMAGE_CLASSIFIERS) - {"nudenet", "transformers"}:
    raise ImproperlyConfigured(
        "TRIAGE_IMAGE_CLASSIFIERS may list only nudenet and transformers, not "
        f"{', '.join(sorted(set(TRIAGE_IMAGE_CLASSIFIERS) - {'nudenet', 'transformers'}))}"
    )
TRIAGE_IMAGE_MODEL = env_str("TRIAGE_IMAGE_MODEL", "Falconsai/nsfw_image_detection")
TRIAGE_IMAGE_MODEL_REVISION = env_str("TRIAGE_IMAGE_MODEL_REVISION", "main")
# The model's labels that count as unsafe: the signal's score is their summed probability.
TRIAGE_IMAGE_UNSAFE_LABELS = env_list("TRIAGE_IMAGE_UNSAFE_LABELS", "nsfw")


# --- Audit checkpoints (signed heads of the audit chain, kept outside the database) ---------
# The signing key: PEM or a base64 32-byte seed, inline or in a file. Unset: a key generated
# into VAR_DIR/audit-checkpoint-key.pem. Never stored in the database.
AUDIT_CHECKPOINT_KEY = env_str("AUDIT_CHECKPOINT_KEY")
AUDIT_CHECKPOINT_KEY_FILE = env_str("AUDIT_CHECKPOINT_KEY_FILE")
# The verifying key (an auditor needs only this); derived from the signing key when unset.
AUDIT_CHECKPOINT_PUBLIC_KEY = env_str("AUDIT_CHECKPOINT_PUBLIC_KEY")
AUDIT_CHECKPOINT_PUBLIC_KEY_FILE = env_str("AUDIT_CHECKPOINT_PUBLIC_KEY_FILE")
# Where checkpoints go: a STORAGES alias. The default alias is a directory (or any backend).
AUDIT_CHECKPOINT_STORAGE = env_str("AUDIT_CHECKPOINT_STORAGE", "audit_checkpoints")
AUDIT_CHECKPOINT_DIR = env_str("AUDIT_CHECKPOINT_DIR", str(VAR_DIR / "audit-checkpoints"))

# Precedents (appeals/precedents/): where the nearest-neighbour index file lives (a cache,
# rebuilt from the database by `manage.py rebuild_precedents`), the scalar type of its vectors
# (f16 halves the memory of f32 at no measurable loss of recall; i8 quarters it), and up to how
# many embeddings a page view may rebuild a missing or unusable index by itself.
PRECEDENTS_INDEX_DIR = env_str("PRECEDENTS_INDEX_DIR", str(VAR_DIR / "precedents"))
PRECEDENTS_INDEX_DTYPE = env_str("PRECEDENTS_INDEX_DTYPE", "f16")
if PRECEDENTS_INDEX_DTYPE not in ("f32", "f16", "i8"):
    raise ImproperlyConfigured(
        f"PRECEDENTS_INDEX_DTYPE must be f32, f16 or i8, not {PRECEDENTS_INDEX_DTYPE!r}"
    )
PRECEDENTS_INLINE_REBUILD_MAX = env_int("PRECEDENTS_INLINE_REBUILD_MAX", 50_000)
# How old the index file may grow before a worker, after embedding a batch, writes it again.
PRECEDENTS_INDEX_SAVE_SECONDS = env_int("PRECEDENTS_INDEX_SAVE_SECONDS", 600)
AUDIT_CHECKPOINT_INTERVAL_SECONDS = env_int("AUDIT_CHECKPOINT_INTERVAL_SECONDS", 600, minimum=10)


def env_json_object(name: str, default: dict) -> dict:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {error}") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, not {raw!r}")
    return value


STORAGES["audit_checkpoints"] = {
    "BACKEND": env_str(
        "AUDIT_CHECKPOINT_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"
    ),
    "OPTIONS": env_json_object(
        "AUDIT_CHECKPOINT_STORAGE_OPTIONS",
        {"location": AUDIT_CHECKPOINT_DIR, "file_permissions_mode": 0o440},
    ),
}
if AUDIT_CHECKPOINT_STORAGE not in STORAGES:
    raise ImproperlyConfigured(
        f"AUDIT_CHECKPOINT_STORAGE must name a storage in STORAGES ({', '.join(STORAGES)}), "
        f"not {AUDIT_CHECKPOINT_STORAGE!r}"
    )

# --- Drafts ----------------------------------------------------------------------------------
# Liveness of drafts (appeals/drafts/heartbeat.py): while the backend works, the worker refreshes
# the draft's heartbeat every DRAFT_HEARTBEAT_SECONDS; the sweep (every DRAFT_SWEEP_SECONDS) takes
# back a running draft whose heartbeat is older than DRAFT_STALL_SECONDS (its worker died) and
# tries it again. A run that keeps beating past DRAFT_MAX_RUN_SECONDS is treated as wedged.
DRAFT_HEARTBEAT_SECONDS = env_int("DRAFT_HEARTBEAT_SECONDS", 10, minimum=1)
DRAFT_STALL_SECONDS = env_int("DRAFT_STALL_SECONDS", 60, minimum=2)
DRAFT_SWEEP_SECONDS = env_int("DRAFT_SWEEP_SECONDS", 30, minimum=1)
DRAFT_MAX_RUN_SECONDS = env_int("DRAFT_MAX_RUN_SECONDS", 3600, minimum=10)
DRAFT_MAX_ATTEMPTS = env_int("DRAFT_MAX_ATTEMPTS", 3, minimum=1)
# A pending draft whose message went to the broker this long ago and was never taken is resent.
DRAFT_RESEND_SECONDS = env_int("DRAFT_RESEND_SECONDS", 900, minimum=10)
if DRAFT_STALL_SECONDS <= 2 * DRAFT_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"DRAFT_STALL_SECONDS ({DRAFT_STALL_SECONDS}) must be more than twice "
        f"DRAFT_HEARTBEAT_SECONDS ({DRAFT_HEARTBEAT_SECONDS}), or a live draft whose heartbeat is "
        "a little late would be taken back"
    )

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    for _folder in (_broker_dir, VAR_DIR / "broker-control"):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "control_folder": str(VAR_DIR / "broker-control"),
    }
else:
    # Redis: a task whose worker died comes back after this many seconds.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Second opinions (appeals/second_opinions/): the first delay before a transient failure (a
# timeout, a model server unreachable) is tried again; it doubles on each of five retries.
SECOND_OPINION_RETRY_SECONDS = env_int("SECOND_OPINION_RETRY_SECONDS", 10, minimum=1)
CELERY_TASK_ROUTES = {
    "appeals.tasks.draft_recommendations": {"queue": "gpu"},
    "appeals.tasks.deliver_decision_callback": {"queue": "default"},
    "appeals.tasks.fetch_item_media": {"queue": "default"},
    "appeals.tasks.triage_items": {"queue": "default"},  # the fast tier runs on CPU workers
    "appeals.tasks.second_opinions": {"queue": "default"},  # HTTP calls to model servers
    "appeals.tasks.group_near_duplicates": {"queue": "default"},
    "appeals.tasks.embed_cases": {"queue": "default"},  # precedents' embeddings: CPU too
    "appeals.tasks.write_audit_checkpoint": {"queue": "default"},
    "policies.tasks.run_evaluation": {"queue": "gpu"},
    "appeals.tasks.sweep_callbacks": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE = {
    "recover-stalled-drafts": {
        "task": "appeals.tasks.recover_stalled_drafts",
        "schedule": float(DRAFT_SWEEP_SECONDS),
    },
    "sweep-callbacks": {
        "task": "appeals.tasks.sweep_callbacks",
        "schedule": float(CALLBACK_SWEEP_SECONDS),
    },
    "write-audit-checkpoint": {
        "task": "appeals.tasks.write_audit_checkpoint",
        "schedule": float(AUDIT_CHECKPOINT_INTERVAL_SECONDS),
    },
    "recover-stalled-evaluations": {
        "task": "policies.tasks.recover_stalled_evaluations",
        "schedule": 60.0,
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- The safeguard model -------------------------------------------------------------------
# The engine's SAFEGUARD_* variables have one reader, the engine's own (EngineConfig.from_env in
# policies/safeguard/config.py); read here once so a typo stops the process at start.
try:
    SAFEGUARD = EngineConfig.from_env()
except ValueError as _error:
    raise ImproperlyConfigured(str(_error)) from None
SAFEGUARD_BATCH_SIZE = SAFEGUARD.batch_size

# --- Policy workbench (evaluation runs and the publish gate) --------------------------------
# Requests in flight per evaluation run (OpenAI-compatible backend), and items per chunk between
# heartbeats; a run silent this long is handed to another worker.
WORKBENCH_MAX_CONCURRENCY = env_int("WORKBENCH_MAX_CONCURRENCY", 64, minimum=1)
WORKBENCH_CHUNK_SIZE = env_int("WORKBENCH_CHUNK_SIZE", 64, minimum=1)
WORKBENCH_STALL_SECONDS = env_int("WORKBENCH_STALL_SECONDS", 300, minimum=10)
# Publishing is refused when F1 falls by more than this against the published version.
try:
    WORKBENCH_F1_MARGIN = float(env_str("WORKBENCH_F1_MARGIN", "0.02"))
except ValueError:
    raise ImproperlyConfigured("WORKBENCH_F1_MARGIN must be a number such as 0.02") from None
if not 0 <= WORKBENCH_F1_MARGIN <= 1:
    raise ImproperlyConfigured("WORKBENCH_F1_MARGIN must be between 0 and 1")

# A draft task drains its policy version's pending drafts for at most this long, then hands the
# rest to a new task (so a worker's warm shutdown and other policy versions are not kept waiting).
DRAFT_DRAIN_SECONDS = env_int("DRAFT_DRAIN_SECONDS", 300, minimum=1)


# --- Near-duplicate groups (appeals/groups/, appeals/review/groups.py) ----------------------
# Texts join a group when the Jaccard similarity of their normalised 5-character shingles is at
# least GROUP_TEXT_SIMILARITY (MinHash + LSH bands find the candidates; the exact Jaccard decides);
# texts shorter than GROUP_TEXT_MIN_CHARS are never grouped. Images join when their perceptual
# hashes (pHash, 64 bits) differ in at most GROUP_IMAGE_MAX_BITS bits. A group holds at most
# GROUP_MAX_SIZE cases.
def _group_similarity() -> float:
    raw = env_str("GROUP_TEXT_SIMILARITY", "0.85")
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"GROUP_TEXT_SIMILARITY must be a number such as 0.85, not {raw!r}"
        ) from None
    if not 0.5 <= value <= 1:
        raise ImproperlyConfigured(f"GROUP_TEXT_SIMILARITY must be between 0.5 and 1, not {raw}")
    return value


GROUP_TEXT_SIMILARITY = _group_similarity()
GROUP_TEXT_MIN_CHARS = env_int("GROUP_TEXT_MIN_CHARS", 40, minimum=1)
GROUP_IMAGE_MAX_BITS = env_int("GROUP_IMAGE_MAX_BITS", 6)
if GROUP_IMAGE_MAX_BITS > 15:
    raise ImproperlyConfigured("GROUP_IMAGE_MAX_BITS must be at most 15 (of 64)")
GROUP_MAX_SIZE = env_int("GROUP_MAX_SIZE", 1000, minimum=2)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
