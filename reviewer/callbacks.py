"""Undelivered platform callbacks on the dashboard, for seniors, and their "retry now" button.

Thin over `appeals.disclosure.outbox`; the permission is checked here and in the service.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from appeals.disclosure import outbox
from appeals.models import CallbackDelivery

UNDELIVERED_LIST_LIMIT = 50


def undelivered_callbacks(user) -> dict:
    """The dashboard's context for the undelivered-callbacks panel (empty for everyone else)."""
    if not outbox.can_retry_callbacks(user):
        return {}
    undelivered = CallbackDelivery.objects.undelivered()
    return {
        "undelivered_count": undelivered.count(),
        "undelivered": list(
            undelivered.select_related("decision__case__platform").order_by(
                "status", "next_attempt_at"
            )[:UNDELIVERED_LIST_LIMIT]
        ),
    }


@require_POST
def retry_callback(request, delivery_id: int):
    if not outbox.can_retry_callbacks(request.user):
        raise PermissionDenied("you may not retry callbacks")
    get_object_or_404(CallbackDelivery, id=delivery_id)
    try:
        delivery = outbox.retry_now(actor=request.user, delivery_id=delivery_id)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request, f"The callback of case #{delivery.decision.case_id} will be sent again now."
        )
    return redirect("dashboard")
