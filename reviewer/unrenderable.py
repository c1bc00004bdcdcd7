"""A case page that fails to render is set aside, so "Next" never hands the same broken case out.

Whatever made the page fail (a value from a platform no template expected, a bug), the reviewer
holding the case cannot work it, and `claim_next_case` gives a holder their own live claim first:
without this they would get the same error from "Next" until the lease expired. So the lease is
given back through the queue services, with the failure as the audited reason: escalated to a
senior reviewer, or, for a case already in the escalations queue, skipped by this senior (it is
not offered to them again; another senior can look). The error is logged with its traceback.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils import timezone

from appeals.models import Case, Queue
from appeals.review.queueing import escalate_case, skip_case

log = logging.getLogger(__name__)


def set_aside_unrenderable_case(request, case: Case, error: Exception):
    """Log `error`, give back the viewer's lease with the reason, and say so on a bare page."""
    log.exception("case %s: the case page could not be rendered", case.id, exc_info=error)
    reason = (
        f"The case page could not be shown ({type(error).__name__}); "
        "set aside for a senior reviewer. The error is in the server log."
    )
    set_aside = ""
    holds_lease = (
        case.status == Case.Status.OPEN
        and case.claimed_by_id == request.user.id
        and case.lease_is_live(now=timezone.now())
    )
    if holds_lease:
        service = skip_case if case.queue == Queue.ESCALATIONS else escalate_case
        try:
            service(
                reviewer=request.user,
                case_id=case.id,
                lease_token=case.lease_token,
                reason=reason,
            )
            set_aside = "skipped" if service is skip_case else "escalated"
        except ValidationError:  # the lease went meanwhile: nothing of ours to give back
            log.warning("case %s: could not set the unrenderable case aside", case.id)
    return render(
        request,
        "reviewer/case_unavailable.html",
        {"case_id": case.id, "queue": case.queue, "set_aside": set_aside},
        status=500,
    )
