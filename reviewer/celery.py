"""The Celery app. Routing and reliability settings live in `reviewer/settings.py`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewer.settings")

app = Celery("reviewer")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each stage of `appeals` that has background work keeps its tasks in its own `tasks.py`.
app.autodiscover_tasks(
    [
        "appeals.drafts",
        "appeals.disclosure",
        "appeals.media",
        "appeals.second_opinions",
        "appeals.triage",
        "appeals.groups",
        "appeals.precedents",
        "policies",
    ]
)
