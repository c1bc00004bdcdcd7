from django.apps import AppConfig


class AppealsConfig(AppConfig):
    name = "appeals"
    verbose_name = "Cases and appeals"

    def ready(self):
        from .drafts import signals  # noqa: F401  (connects the worker start-up report)
