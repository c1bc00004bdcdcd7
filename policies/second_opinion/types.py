"""Plain values in and out of the second-opinion adapters: no Django, no Celery.

A second opinion is what another open safety model (Llama Guard, ShieldGemma, Qwen3Guard,
NemoGuard, CoPE) says about a case's content, beside the safeguard draft. Every opinion has a
verdict or exactly one named failure reason, like the main engine's drafts.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    VIOLATING = "violating"
    NOT_VIOLATING = "not_violating"
    UNCERTAIN = "uncertain"  # the model says so itself (Qwen3Guard's "Controversial")


class FailureReason(enum.StrEnum):
    """Why an opinion has no verdict. Every failed opinion carries exactly one."""

    NOT_CONFIGURED = "not_configured"  # no server, no model, an unknown adapter, an unset key
    TIMEOUT = "timeout"  # no answer within the configured time
    UNREACHABLE = "unreachable"  # connection refused or reset, or 5xx, after the retries
    HTTP_ERROR = "http_error"  # 4xx: a wrong model name or key; trying again will not help
    MALFORMED_RESPONSE = "malformed_response"  # the body is not a chat completion
    EMPTY_ANSWER = "empty_answer"  # a chat completion with no text in it
    MALFORMED_ANSWER = "malformed_answer"  # text that is not the model's published format
    UNKNOWN_CATEGORY = "unknown_category"  # the format, but a category the model does not have

    @property
    def transient(self) -> bool:
        """A later try may get an answer (the task retries these)."""
        return self in (FailureReason.TIMEOUT, FailureReason.UNREACHABLE)


class AnswerError(Exception):
    """A model's answer that cannot be read; `reason` names why."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Parsed:
    verdict: Verdict
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat-completions request an adapter needs; `key` names what it asks (a harm)."""

    messages: tuple[dict[str, Any], ...]
    max_tokens: int
    key: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OpinionSettings:
    """How to reach one second-opinion model, and what its categories mean in the policy."""

    adapter: str
    base_url: str
    model: str
    api_key: str = ""
    timeout_s: float = 30.0
    max_retries: int = 2
    # category (as the model names it) → the policy's rule ids; for ShieldGemma the keys are
    # also the harms asked about (all four when empty).
    category_rules: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    policy_text: str = ""  # CoPE: the policy it reads


@dataclass(frozen=True, slots=True)
class Opinion:
    """What one model said about one case's content, or why it said nothing usable."""

    adapter: str
    model: str
    verdict: Verdict | None = None
    categories: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()  # mapped from the categories by the settings
    raw_answer: str = ""
    failure_reason: FailureReason | None = None
    failure_detail: str = ""
    latency_ms: int = 0
    attempts: int = 0  # HTTP attempts, all requests together
    requests: int = 0

    @property
    def failed(self) -> bool:
        return self.failure_reason is not None
