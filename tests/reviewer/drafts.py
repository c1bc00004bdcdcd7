"""Drafted recommendations as TEST DATA, standing in for the model.

The safeguard model cannot run in these tests, so these builders write what a finished (or
failed) draft looks like straight onto the pending recommendation that intake created.
"""

from __future__ import annotations

from django.utils import timezone

from appeals.models import Recommendation


def ready_draft(
    case,
    *,
    violation=True,
    rule_ids=("SP2.b",),
    confidence="high",
    rationale="Unsolicited promotion of a shop: an irrelevant ad (SP2.b).",
    reasoning="The post advertises gold rings with no context. SP2.b covers irrelevant ads.",
    unknown_rule_ids=(),
    injection_signals=(),
    model_id="openai/gpt-oss-safeguard-20b",
):
    """Test data: mark the case's pending recommendation as a finished, ready draft."""
    rec = case.recommendations.order_by("-id").first()
    fields = dict(
        status=Recommendation.Status.READY,
        finished_at=timezone.now(),
        started_at=timezone.now(),
        violation=violation,
        rule_ids=list(rule_ids),
        unknown_rule_ids=list(unknown_rule_ids),
        confidence=confidence,
        rationale=rationale,
        reasoning=reasoning,
        injection_signals=list(injection_signals),
        backend="test-data",
        model_id=model_id,
    )
    Recommendation.objects.filter(id=rec.id).update(**fields)
    rec.refresh_from_db()
    return rec


def failed_draft(
    case,
    *,
    reason="not_configured",
    detail="No model is configured: set SAFEGUARD_BASE_URL or run on a machine with a GPU.",
):
    rec = case.recommendations.order_by("-id").first()
    Recommendation.objects.filter(id=rec.id).update(
        status=Recommendation.Status.FAILED,
        failure_reason=reason,
        failure_detail=detail,
        finished_at=timezone.now(),
    )
    rec.refresh_from_db()
    return rec
