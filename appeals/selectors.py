"""Read-only questions about cases, for pages and reports. Nothing here changes state."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, F, Q
from django.utils import timezone

from .models import Case, Decision


def past_due_cases(*, now: dt.datetime | None = None, queue: str | None = None):
    """Open cases whose time to decide (per their policy, set on intake) has run out."""
    now = now or timezone.now()
    cases = Case.objects.open().filter(due_at__lt=now)
    if queue:
        cases = cases.filter(queue=queue)
    return cases.order_by("due_at", "id")


def past_due_counts(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Open cases past due, per queue (queues with none are left out)."""
    now = now or timezone.now()
    rows = (
        Case.objects.open()
        .filter(due_at__lt=now)
        .values("queue")
        .annotate(n=Count("id"))
        .order_by("queue")
    )
    return {row["queue"]: row["n"] for row in rows}


def decided_late_counts(*, since: dt.datetime | None = None) -> dict[str, int]:
    """Decisions taken after their case was due, per case kind (flag, appeal)."""
    decisions = Decision.objects.filter(decided_at__gt=F("case__due_at"))
    if since:
        decisions = decisions.filter(decided_at__gte=since)
    rows = decisions.values("case__kind").annotate(n=Count("id")).order_by("case__kind")
    return {row["case__kind"]: row["n"] for row in rows}


def due_soon_count(*, within: dt.timedelta, now: dt.datetime | None = None) -> int:
    """Open cases that fall due within `within` from now (and are not yet past due)."""
    now = now or timezone.now()
    return Case.objects.open().filter(Q(due_at__gte=now) & Q(due_at__lt=now + within)).count()
