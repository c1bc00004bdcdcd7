from django.apps import AppConfig


class AppealsConfig(AppConfig):
    name = "appeals"
    verbose_name = "Cases and appeals"

    def ready(self):
        from . import checks, signals  # noqa: F401  (registers checks, connects the worker report)
