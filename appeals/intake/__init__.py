"""Intake: how cases come in. The platform API (`api.py`, its body shapes in `schemas.py`, its
bearer tokens in `tokens.py`) and `manage.py import_cases` are thin over `services.py` (one
item or appeal) and `bulk.py` (many items), which write Item + Case + pending Recommendation +
the `received` event in one transaction."""
