"""The content hash of each audited record, as it was written: one function per model.

Every audit event that creates or changes a decision, recommendation, item, case (a flag or an
appeal), policy, policy version or policy rule carries, in `data["row_hashes"]`, the hash of
each such row as the same transaction left it (`row_hashes`). `verify_audit --records`
recomputes the hash of every row now in the database and compares it with the newest event's
(`appeals.record_check`).

A hash covers the fields that say what happened: what was sent in, what the model said, what a
person decided and what the platform and the user were told. It leaves out bookkeeping that
moves on its own (leases, queue placement, draft attempts and timings, token use timestamps),
so a change to one of those needs no event. The text hashed is canonical: fields by name, keys
sorted, times in UTC, so a row read back from PostgreSQL or SQLite hashes the same.

Policies' rows are hashed here, not in `policies`, because `policies` imports nothing from
`appeals`; `appeals.policy_audit` records their events.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import models

from policies.models import Policy, PolicyRule, PolicyVersion

from .models import Case, Decision, Item, Recommendation

HASH_VERSION = "v1"


@dataclass(frozen=True)
class RecordKind:
    """One audited model: its label in `row_hashes` keys ("decision:12") and its hashed fields."""

    label: str
    model: type[models.Model]
    fields: tuple[str, ...]

    def describe(self, row_id: int) -> str:
        return f"{self.label.replace('_', ' ')} {row_id}"


def _normal(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _hash(kind: RecordKind, values: dict) -> str:
    content = {name: _normal(values[name]) for name in kind.fields}
    text = json.dumps(
        [HASH_VERSION, kind.label, content],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(text.encode()).hexdigest()


ITEM = RecordKind(
    "item",
    Item,
    (
        "platform_id",
        "external_id",
        "policy_version_id",
        "content",
        "content_type",
        "author_id",
        "reporter_id",
        "source",
        "flagged_at",
        "metadata",
        "received_at",
    ),
)
CASE = RecordKind(
    "case",
    Case,
    (
        "kind",
        "platform_id",
        "external_id",
        "item_id",
        "policy_version_id",
        "request_sha256",
        "created_at",
        "appellant_id",
        "statement",
        "original_action",
        "original_rule_ids",
        "original_decided_at",
        "appealed_decision_id",
    ),
)
# What the model said and how; not the request's progress (status, attempts, run token, times),
# which the worker moves without changing what was said.
RECOMMENDATION = RecordKind(
    "recommendation",
    Recommendation,
    (
        "case_id",
        "policy_version_id",
        "failure_reason",
        "failure_detail",
        "violation",
        "policy_category",
        "rule_ids",
        "unknown_rule_ids",
        "confidence",
        "rationale",
        "reasoning",
        "raw_output",
        "injection_signals",
        "policy_sha256",
        "backend",
        "model_id",
        "model_revision",
        "prompt_sha256",
        "reasoning_effort",
        "conversation_date",
        "tokens_in",
        "tokens_out",
        "latency_ms",
        "engine_attempts",
    ),
)
DECISION = RecordKind(
    "decision",
    Decision,
    (
        "case_id",
        "decided_by_id",
        "decided_at",
        "outcome",
        "action",
        "rule_ids",
        "note",
        "recommendation_id",
        "model_outcome",
        "agrees_with_model",
        "accepted_recommendation",
        "recommendation_shown",
        "blind_outcome",
        "blind_rule_ids",
        "blind_agrees_with_model",
        "claimed_at",
        # What the platform and the user were told (issue 10.5).
        "notice",
        "policy_name",
        "appeal_window_days",
        "appeal_deadline",
        "dsa_mapping",
    ),
)
POLICY = RecordKind(
    "policy",
    Policy,
    (
        "slug",
        "name",
        "reasoning_effort",
        "appeal_window_days",
        "decide_within_hours",
        "appeal_decide_within_hours",
        "dsa_mapping",
    ),
)
POLICY_VERSION = RecordKind(
    "policy_version",
    PolicyVersion,
    ("policy_id", "number", "text", "sha256", "status", "source", "licence_notice"),
)
POLICY_RULE = RecordKind("policy_rule", PolicyRule, ("version_id", "rule_id", "text", "position"))

RECORD_KINDS = (ITEM, CASE, RECOMMENDATION, DECISION, POLICY, POLICY_VERSION, POLICY_RULE)
_BY_MODEL = {kind.model: kind for kind in RECORD_KINDS}
BY_LABEL = {kind.label: kind for kind in RECORD_KINDS}


def item_hash(values: dict) -> str:
    return _hash(ITEM, values)


def case_hash(values: dict) -> str:
    return _hash(CASE, values)


def recommendation_hash(values: dict) -> str:
    return _hash(RECOMMENDATION, values)


def decision_hash(values: dict) -> str:
    return _hash(DECISION, values)


def policy_hash(values: dict) -> str:
    return _hash(POLICY, values)


def policy_version_hash(values: dict) -> str:
    return _hash(POLICY_VERSION, values)


def policy_rule_hash(values: dict) -> str:
    return _hash(POLICY_RULE, values)


HASHERS = {
    ITEM.label: item_hash,
    CASE.label: case_hash,
    RECOMMENDATION.label: recommendation_hash,
    DECISION.label: decision_hash,
    POLICY.label: policy_hash,
    POLICY_VERSION.label: policy_version_hash,
    POLICY_RULE.label: policy_rule_hash,
}


def kind_for(obj: models.Model) -> RecordKind:
    try:
        return _BY_MODEL[obj._meta.concrete_model]
    except KeyError:
        raise TypeError(f"{type(obj).__name__} is not an audited record") from None


def rows(kind: RecordKind, ids: Iterable[int] | None = None):
    """(id, values) of `kind`'s rows as the database has them, by id (all rows if no ids)."""
    queryset = kind.model.objects.order_by("id")
    if ids is not None:
        queryset = queryset.filter(id__in=list(ids))
    return queryset.values("id", *kind.fields)


def row_hashes_keys(objects: Iterable[models.Model]) -> list[str]:
    """The `row_hashes` keys of these rows, in order: "decision:12", "item:3", …"""
    return [f"{kind_for(obj).label}:{obj.id}" for obj in objects]


# In place of a hash: the row was deleted by the application, in the event that says so.
DELETED = "deleted"


def deleted_rows(model: type[models.Model], ids: Iterable[int]) -> dict[str, str]:
    """`row_hashes` entries saying these rows were deleted on purpose (a draft's old rules)."""
    label = _BY_MODEL[model].label
    return {f"{label}:{row_id}": DELETED for row_id in ids}


def row_hashes(objects: Iterable[models.Model]) -> dict[str, str]:
    """{"decision:12": hash, …} for the given rows, read back from the database (so the hash is
    of the row as written, whatever the instances in memory say). One query per model."""
    wanted: dict[RecordKind, set[int]] = {}
    for obj in objects:
        if obj.id is None:
            raise ValueError(f"{type(obj).__name__} has no id yet: save it before its event")
        wanted.setdefault(kind_for(obj), set()).add(obj.id)
    hashes: dict[str, str] = {}
    for kind, ids in wanted.items():
        found = {values["id"]: values for values in rows(kind, ids)}
        for row_id in sorted(ids):
            if row_id not in found:
                raise ValueError(f"{kind.describe(row_id)} is not in the database")
            hashes[f"{kind.label}:{row_id}"] = HASHERS[kind.label](found[row_id])
    return hashes
