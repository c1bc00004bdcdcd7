"""Second opinions: the other open safety models, behind OpenAI-compatible chat-completions
servers, asked about a case's content beside the safeguard draft.

Framework-free like `policies.safeguard` (whose HTTP client it reuses): plain values in and out.

    opinion = ask(OpinionSettings(adapter="llama_guard_3", base_url=..., model=...), content)
    opinion.verdict, opinion.categories, opinion.rule_ids, opinion.failure_reason
"""

from .adapters import ADAPTERS, categories_of
from .client import ask, settings_problem
from .types import (
    AnswerError,
    ChatRequest,
    FailureReason,
    Opinion,
    OpinionSettings,
    Parsed,
    Verdict,
)

__all__ = [
    "ADAPTERS",
    "AnswerError",
    "ChatRequest",
    "FailureReason",
    "Opinion",
    "OpinionSettings",
    "Parsed",
    "Verdict",
    "ask",
    "categories_of",
    "settings_problem",
]
