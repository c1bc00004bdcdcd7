"""Blind-first, leak-free: what the console withholds until the reviewer's own call is recorded.

On a blind-first queue the model's verdict, rules, confidence and reasoning reach a reviewer only
after their blind call (the decide service refuses a final decision before it). Besides the case
page's recommendation panel, that covers the queue list (no model column, no verdict filter on
open cases), the case timeline (the draft's facts are withheld), the drafts of other cases of the
same item (the same content, so the same verdict) and the exports a reviewer could download.
"""

from __future__ import annotations

from appeals.models import AuditEvent, Case, QueueSetting
from appeals.review.permissions import can_work_queue

DRAFT_EVENT_KINDS = frozenset({AuditEvent.Kind.DRAFTED})


def blind_first_queues() -> set[str]:
    return set(QueueSetting.objects.filter(blind_first=True).values_list("queue", flat=True))


def owes_blind_call_on_item(case: Case, user, *, queues=None) -> bool:
    """Does `user` still owe a blind call on an open blind-first case of this case's item?"""
    queues = [
        q for q in (blind_first_queues() if queues is None else queues) if can_work_queue(user, q)
    ]
    if not queues:
        return False
    pending = (
        Case.objects.filter(item_id=case.item_id, status=Case.Status.OPEN, queue__in=queues)
        .exclude(events__kind=AuditEvent.Kind.BLIND_CALL, events__actor=user)
        .exists()
    )
    return pending


# What a decision's event says of the model: its verdict can be read back from these.
MODEL_FACTS = frozenset(
    {"model_outcome", "agrees_with_model", "accepted_recommendation", "recommendation_id"}
)


def redact_timeline(timeline: list[dict]) -> list[dict]:
    """The timeline with the draft's facts (verdict, rules, confidence, model) withheld, and what
    a decision's event says of the model (agreement, acceptance)."""
    redacted = []
    for event in timeline:
        if event["kind"] in DRAFT_EVENT_KINDS:
            event = {**event, "data": {}, "actor_label": "the model"}
        elif isinstance(event["data"], dict) and MODEL_FACTS & event["data"].keys():
            data = {k: v for k, v in event["data"].items() if k not in MODEL_FACTS}
            event = {**event, "data": data}
        redacted.append(event)
    return redacted


def may_download_exports(user) -> str:
    """Why `user` may not download exports that carry the model's drafts, or ''.

    Exports carry every decided case's draft; someone who reviews a blind-first queue could read
    there the verdict on content they are yet to call (an appeal's item was flagged before).
    """
    queues = [q for q in blind_first_queues() if can_work_queue(user, q)]
    if not queues:
        return ""
    return (
        "You review cases in a blind-first queue; exports carry the model's drafts, so they are "
        "downloaded by auditors who do not review."
    )
