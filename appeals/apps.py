from django.apps import AppConfig


class AppealsConfig(AppConfig):
    name = "appeals"
    verbose_name = "Cases and appeals"

    def ready(self):
        from . import checks  # noqa: F401  (registers the database checks)
        from .drafts import signals  # noqa: F401  (connects the worker start-up report)
        from .policy_audit import connect

        connect()  # policy changes become audit events
