"""Drafting: asking the safeguard model for a recommendation. `services.py` requests, runs and
recovers drafts; `tasks.py` holds the Celery tasks (the `gpu` queue and the recovery sweep)."""
