"""The site: settings, root URLs, the Celery app and the reviewer's pages."""

from .celery import app as celery_app

__all__ = ("celery_app",)
