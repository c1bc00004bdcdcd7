"""Intake: how cases come in. The platform API (`api.py`, its body shapes in `schemas.py`, its
bearer tokens in `tokens.py`) and `manage.py import_cases` are thin over `services.py`, which
writes Item + Case + pending Recommendation + the `received` event in one transaction."""
