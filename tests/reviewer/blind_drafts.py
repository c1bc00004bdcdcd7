"""A draft landed through the worker's own path (start_drafts, finish_draft), so the audit log
carries the DRAFTED event with the model's facts exactly as a real run writes it. TEST DATA: the
answer is written here, standing in for the model."""

from __future__ import annotations

import datetime as dt

from appeals.drafts.services import finish_draft, start_drafts
from policies.safeguard.types import Draft, DraftStatus, Provenance

SECRET_RATIONALE = "LEAKCHECK-RATIONALE a fake giveaway dressed as a prize"
SECRET_REASONING = "LEAKCHECK-REASONING the link and the prize claim point to SP3.a"
SECRET_MODEL = "leakcheck/safeguard-test-model"


def land_draft(case, *, violation=True, rule_ids=("SP3.a",), confidence="high"):
    rec = case.recommendations.order_by("-id").first()
    token = start_drafts([rec.id])[rec.id]
    provenance = Provenance(
        backend="test-data",
        model_id=SECRET_MODEL,
        model_revision="",
        policy_version_id=str(case.policy_version_id),
        policy_sha256="",
        prompt_sha256="",
        reasoning_effort="",
        conversation_date=dt.date(2026, 11, 26),
    )
    draft = Draft(
        case_key=str(case.id),
        status=DraftStatus.READY,
        provenance=provenance,
        violation=violation,
        rule_ids=tuple(rule_ids),
        confidence=confidence,
        rationale=SECRET_RATIONALE,
        reasoning=SECRET_REASONING,
    )
    assert finish_draft(rec.id, token, draft)
    rec.refresh_from_db()
    return rec
