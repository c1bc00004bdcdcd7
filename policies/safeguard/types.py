"""Plain values that go into and come out of the safeguard engine.

Nothing here knows about Django, Celery or torch: the engine takes a policy and some cases,
and gives back one `Draft` per case, each with the provenance needed to audit it later.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class ReasoningEffort(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class DraftStatus(enum.StrEnum):
    READY = "ready"
    FAILED = "failed"


class FailureReason(enum.StrEnum):
    """Why a draft has no usable answer. Every failed draft carries exactly one."""

    NOT_CONFIGURED = "not_configured"  # no GPU and no model server: nothing to run on
    NO_FINAL_ANSWER = "no_final_answer"  # reasoning came back but no final channel
    UNPARSEABLE = "unparseable"  # a final answer that is neither JSON nor a policy label
    TRUNCATED = "truncated"  # hit the output-token limit inside the final answer
    REASONING_EXHAUSTED = "reasoning_exhausted"  # the reasoning used the whole token budget
    EMPTY = "empty"  # the model returned nothing at all
    TIMEOUT = "timeout"
    BACKEND_ERROR = "backend_error"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str  # e.g. "GV1", "GV1.a", "SP2.b"
    text: str  # the section text that defines it


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One immutable policy version, as the engine needs it."""

    version_id: str
    text: str
    sha256: str
    rules: tuple[Rule, ...] = ()
    reasoning_effort: ReasoningEffort | None = None  # None: the engine's configured default
    name: str = ""

    def rule(self, rule_id: str) -> Rule | None:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None


@dataclass(frozen=True, slots=True)
class OriginalDecision:
    outcome: str
    rule_ids: tuple[str, ...] = ()
    decided_at: str | None = None


@dataclass(frozen=True, slots=True)
class ContextNote:
    """A labelled piece of text about the content (a caption, alt text, a transcript)."""

    label: str
    text: str


@dataclass(frozen=True, slots=True)
class CaseSpec:
    """The content under review; for an appeal also the decision appealed and the statement."""

    key: str  # the caller's id for the case; drafts come back in the same order
    content: str
    content_type: str = "text"
    original_decision: OriginalDecision | None = None
    appeal_statement: str | None = None
    # What the platform sent about the content (for media, all a text-only model can read).
    context: tuple[ContextNote, ...] = ()

    @property
    def is_appeal(self) -> bool:
        return self.original_decision is not None


@dataclass(frozen=True, slots=True)
class Provenance:
    backend: str
    model_id: str
    model_revision: str
    policy_version_id: str
    policy_sha256: str
    prompt_sha256: str
    reasoning_effort: str
    conversation_date: dt.date
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class Draft:
    """What the model said about one case. `status` is READY or FAILED with a reason."""

    case_key: str
    status: DraftStatus
    provenance: Provenance
    failure_reason: FailureReason | None = None
    failure_detail: str = ""
    violation: bool | None = None
    policy_category: str | None = None
    rule_ids: tuple[str, ...] = ()
    unknown_rule_ids: tuple[str, ...] = ()  # cited by the model, not defined by the policy
    confidence: str | None = None  # "low" | "medium" | "high"
    rationale: str = ""
    reasoning: str = ""  # the model's analysis channel: reviewers see it, appellants never
    raw_output: str = ""
    injection_signals: tuple[str, ...] = field(default=())  # why the content looks like an attack

    @property
    def is_ready(self) -> bool:
        return self.status is DraftStatus.READY
