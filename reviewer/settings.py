"""Settings for Appeals Copilot, read from the environment.

Every variable is listed, with its default, in the README's configuration table. The defaults
are the embedded quickstart: SQLite and a Celery broker on the local filesystem, no servers.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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
    "django_htmx.middleware.HtmxMiddleware",
    "reviewer.middleware.LoginRequiredMiddleware",
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

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
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

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG and env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Review workflow -----------------------------------------------------------------------
LEASE_SECONDS = env_int("LEASE_SECONDS", 600, minimum=30)
BULK_INTAKE_MAX_ITEMS = 1000
CONTENT_MAX_CHARS = 100_000

# --- Accountability -----------------------------------------------------------------------
# Key for the stable pseudonyms in exports (`--pseudonymise`); defaults to SECRET_KEY.
EXPORT_PSEUDONYM_KEY = env_str("EXPORT_PSEUDONYM_KEY")
CALLBACK_TIMEOUT_SECONDS = env_int("CALLBACK_TIMEOUT_SECONDS", 10, minimum=1)

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
CELERY_TASK_ROUTES = {
    "appeals.tasks.draft_recommendations": {"queue": "gpu"},
    "appeals.tasks.deliver_decision_callback": {"queue": "default"},
    "policies.tasks.run_evaluation": {"queue": "gpu"},
}
CELERY_BEAT_SCHEDULE = {
    "recover-stalled-drafts": {
        "task": "appeals.tasks.recover_stalled_drafts",
        "schedule": 60.0,
    },
    "recover-stalled-evaluations": {
        "task": "policies.tasks.recover_stalled_evaluations",
        "schedule": 60.0,
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- The safeguard model -------------------------------------------------------------------
SAFEGUARD_BACKEND = env_choice("SAFEGUARD_BACKEND", "auto", ("auto", "transformers", "openai"))
SAFEGUARD_MODEL = env_str("SAFEGUARD_MODEL", "openai/gpt-oss-safeguard-20b")
SAFEGUARD_BASE_URL = env_str("SAFEGUARD_BASE_URL")
SAFEGUARD_API_KEY = env_str("SAFEGUARD_API_KEY")
SAFEGUARD_REASONING_EFFORT = env_choice(
    "SAFEGUARD_REASONING_EFFORT", "medium", ("low", "medium", "high")
)
SAFEGUARD_DEVICE = env_choice("SAFEGUARD_DEVICE", "auto", ("auto", "cuda", "cpu"))
SAFEGUARD_MAX_NEW_TOKENS = env_int("SAFEGUARD_MAX_NEW_TOKENS", 2048, minimum=16)
SAFEGUARD_TIMEOUT_SECONDS = env_int("SAFEGUARD_TIMEOUT_SECONDS", 120, minimum=1)
SAFEGUARD_MAX_CONCURRENCY = env_int("SAFEGUARD_MAX_CONCURRENCY", 8, minimum=1)
SAFEGUARD_MAX_RETRIES = env_int("SAFEGUARD_MAX_RETRIES", 3, minimum=0)
SAFEGUARD_BATCH_SIZE = env_int("SAFEGUARD_BATCH_SIZE", 8, minimum=1)
# A draft still "running" this long after it started is taken back and tried again.
DRAFT_STALL_SECONDS = env_int("DRAFT_STALL_SECONDS", 900, minimum=10)
DRAFT_MAX_ATTEMPTS = env_int("DRAFT_MAX_ATTEMPTS", 3, minimum=1)

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
