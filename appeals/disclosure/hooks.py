"""What a decision sets in motion for the platform, kept apart so it never blocks saving one."""

from __future__ import annotations

from django.db import transaction

from appeals.models import AuditEvent, Decision

from . import outbox


def decision_recorded(decision: Decision, *, source: AuditEvent.Source) -> None:
    """Inside the decision's transaction: write its pending callback (the outbox row), and hand
    it to a worker once the decision commits. If that hand-off fails the sweep delivers it."""
    delivery = outbox.add_pending_callback(decision)
    if delivery is not None:
        transaction.on_commit(lambda: outbox.enqueue_delivery(delivery.id, source=source))
