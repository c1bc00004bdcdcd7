"""Appeals without loopholes: which decision an appeal contests, who may decide it, and chains.

- An appeal is linked to the flag decision on its item whichever arrives first: at intake if the
  decision is recorded, else when it is (`link_open_appeals`, called by the decide service).
- Whoever decided the original never decides the appeal: `decider_conflict` is asked by the
  claim, the queue and the decide service.
- At most one open appeal per item (and so per decision): `open_appeal_on` at intake, and the
  constraints `case_one_open_appeal_per_item` / `_per_decision` in the database.
- The platform's stated original decision is compared with the recorded one
  (`original_mismatch`), stored on the appeal, shown on its page and exported.
- A decision that contradicts the latest final decision on the same item supersedes it
  (`Decision.supersedes`, AMO's `override_of`): an appeal's overturn of the decision it contests
  does so by itself; any other contradicting decision must be confirmed (`check_supersedes`).
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError

from appeals.appeal_rules import original_mismatch
from appeals.audit import PendingEvent
from appeals.models import Action, AuditEvent, Case, Decision, Item, Outcome

from .queueing import clear_lease

Kind = AuditEvent.Kind


def decider_conflict(reviewer, case: Case) -> str:
    """Why `reviewer` may not decide `case` (they decided the decision it appeals), or ''."""
    if not case.is_appeal or case.appealed_decision_id is None:
        return ""
    appealed = case.appealed_decision
    if appealed.decided_by_id != reviewer.id:
        return ""
    return (
        f"You decided case #{appealed.case_id}, which this appeal contests; "
        "another reviewer must decide the appeal."
    )


def require_not_decider(reviewer, case: Case) -> None:
    problem = decider_conflict(reviewer, case)
    if problem:
        raise PermissionDenied(problem)


def link_open_appeals(decision: Decision, *, now: dt.datetime, source) -> list[PendingEvent]:
    """A flag decision was just recorded: link the open appeals on its item that wait for it.

    An appeal held by the flag's decider loses its lease (they may not decide it). Returns the
    audit events to record with the decision. Call inside the decision's transaction.
    """
    case = decision.case
    if case.is_appeal:
        return []
    events = []
    waiting = Case.objects.select_for_update().filter(
        item_id=case.item_id,
        kind=Case.Kind.APPEAL,
        status=Case.Status.OPEN,
        appealed_decision__isnull=True,
    )
    for appeal in waiting:
        appeal.appealed_decision = decision
        appeal.original_mismatch = original_mismatch(appeal, decision)
        fields = ["appealed_decision", "original_mismatch"]
        released = appeal.claimed_by_id == decision.decided_by_id
        if released:
            fields += clear_lease(appeal)
        appeal.save(update_fields=fields)
        events.append(
            PendingEvent(
                Kind.APPEAL_LINKED,
                appeal,
                actor_label="system",
                source=source,
                data={
                    "decision_id": decision.id,
                    "flag_case_id": case.id,
                    "mismatch": appeal.original_mismatch,
                    "released_from": decision.decided_by.get_username() if released else "",
                },
            )
        )
        events.append(
            PendingEvent(
                Kind.APPEALED,
                case,
                actor_label="system",
                source=source,
                data={"appeal_case_id": appeal.id},
            )
        )
    return events


def prior_final_decision(case: Case) -> Decision | None:
    """The latest final decision on another case of the same item, if any."""
    return (
        Decision.objects.select_related("case", "decided_by")
        .filter(case__item_id=case.item_id)
        .exclude(case_id=case.id)
        .order_by("-decided_at", "-id")
        .first()
    )


def describe(decision: Decision) -> str:
    kind = "appeal" if decision.case.kind == Case.Kind.APPEAL else "flag"
    return (
        f"{Outcome(decision.outcome).label.lower()} ({Action(decision.action).label.lower()}) "
        f"on {kind} case #{decision.case_id} by {decision.decided_by.get_username()} "
        f"on {decision.decided_at:%Y-%m-%d %H:%M} UTC"
    )


def contradicts(prior: Decision | None, action: str) -> bool:
    """Would a decision with `action` contradict `prior` (leave the item otherwise)?"""
    return prior is not None and prior.action != action


def check_supersedes(case: Case, *, outcome: str, action: str, supersedes) -> Decision | None:
    """The decision this one supersedes, checked against the reviewer's confirmation.

    `supersedes` is the id the reviewer confirmed (or None). An appeal that overturns the very
    decision it contests supersedes it without asking; any other contradiction of the latest
    final decision on the item must be confirmed with that decision's id.
    """
    # One decision at a time per item: two contradicting decisions cannot both miss each other.
    Item.objects.select_for_update().filter(id=case.item_id).first()
    prior = prior_final_decision(case)
    if not contradicts(prior, action):
        if supersedes not in (None, ""):
            raise ValidationError(
                {
                    "supersedes": "this decision does not contradict an earlier final decision "
                    "on the item; there is nothing to supersede"
                }
            )
        return None
    if case.is_appeal and outcome == Outcome.OVERTURN and prior.id == case.appealed_decision_id:
        return prior
    if str(supersedes or "") != str(prior.id):
        raise ValidationError(
            {
                "supersedes": f"this decision contradicts the final decision {describe(prior)}; "
                "confirm that it supersedes that decision"
            }
        )
    return prior
