"""What the intake API answers: the response shapes (for the OpenAPI document) and the case as
a platform reads it back. The model's raw reasoning never leaves through here, only its rationale.
"""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.urls import reverse
from ninja import Schema
from pydantic import Field

from appeals.drafts.services import latest_ready_recommendation, latest_recommendation
from appeals.models import Case, Decision, Recommendation
from appeals.outcomes import model_outcome_for


class ErrorOut(Schema):
    field: str = Field(description="The field, header or part of the request at fault.")
    problem: str


class ErrorsOut(Schema):
    errors: list[ErrorOut]


def case_url(case_id: int) -> str:
    return settings.SITE_URL + reverse("case_detail", args=[case_id])


class CaseRef(Schema):
    id: int
    status: str = Field(description="The case's status: open or decided.")
    url: str = Field(description="The case's page in the review console.")


def _case_ref(case: Case) -> dict:
    return {"id": case.id, "status": case.status, "url": case_url(case.id)}


class BulkResult(Schema):
    index: int = Field(description="The item's position in `items`, from 0.")
    external_id: str | None = None
    status: Literal["created", "existing", "failed"]
    code: int = Field(description="201 created, 200 already here, 409 conflict, 422 invalid.")
    id: int | None = None
    url: str | None = None
    errors: list[ErrorOut] | None = None


class BulkOut(Schema):
    results: list[BulkResult]
    created: int
    existing: int
    failed: int


class RecommendationOut(Schema):
    status: str = Field(description="pending, running, ready or failed.")
    verdict: str | None = Field(
        None,
        description="What the model's answer amounts to: violating or not_violating for a "
        "flag, uphold or overturn for an appeal.",
    )
    violation: bool | None = None
    rule_ids: list[str] = Field(default_factory=list)
    confidence: str | None = None
    rationale: str | None = None
    model_id: str | None = None
    policy: str
    policy_version: int
    drafted_at: str | None = None


class DecisionOut(Schema):
    outcome: str
    action: str
    rule_ids: list[str]
    decided_at: str


class CaseOut(Schema):
    id: int
    url: str
    kind: str
    status: str
    queue: str
    external_id: str
    item_external_id: str
    policy: str
    policy_version: int
    priority: int
    created_at: str
    due_at: str
    recommendation: RecommendationOut | None
    decision: DecisionOut | None


def _recommendation_out(case: Case, rec: Recommendation | None) -> dict | None:
    if rec is None:
        return None
    out = {
        "status": rec.status,
        "policy": rec.policy_version.policy.slug,
        "policy_version": rec.policy_version.number,
    }
    if rec.status == Recommendation.Status.READY:
        # The rationale is what the model wrote for people; its raw reasoning stays inside.
        out.update(
            verdict=model_outcome_for(case, rec) or None,
            violation=rec.violation,
            rule_ids=list(rec.rule_ids),
            confidence=rec.confidence or None,
            rationale=rec.rationale,
            model_id=rec.model_id,
            drafted_at=rec.finished_at.isoformat() if rec.finished_at else None,
        )
    return out


def _decision_out(decision: Decision | None) -> dict | None:
    if decision is None:
        return None
    return {
        "outcome": decision.outcome,
        "action": decision.action,
        "rule_ids": list(decision.rule_ids),
        "decided_at": decision.decided_at.isoformat(),
    }


def _case_out(case: Case) -> dict:
    rec = latest_ready_recommendation(case) or latest_recommendation(case)
    return {
        "id": case.id,
        "url": case_url(case.id),
        "kind": case.kind,
        "status": case.status,
        "queue": case.queue,
        "external_id": case.external_id,
        "item_external_id": case.item.external_id,
        "policy": case.policy_version.policy.slug,
        "policy_version": case.policy_version.number,
        "priority": case.priority,
        "created_at": case.created_at.isoformat(),
        "due_at": case.due_at.isoformat(),
        "recommendation": _recommendation_out(case, rec),
        "decision": _decision_out(Decision.objects.filter(case=case).first()),
    }
