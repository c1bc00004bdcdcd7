"""The safeguard engine: drafts policy-cited recommendations with gpt-oss-safeguard.

Framework-free: plain strings and the frozen dataclasses of `types` in and out, no Django, no
Celery. torch and transformers are imported lazily inside the in-process backend's loader, so
importing this package is cheap and safe in the web process.

    config = EngineConfig.from_env()
    if (reason := unavailable_reason(config)) is None:
        drafts = get_engine(config).draft(policy, cases, conversation_date=date.today())
"""

from .check import check_policy
from .config import EngineConfig, unavailable_reason
from .engine import Engine, get_engine
from .injection import detect_injection, neutralise
from .parsing import ParsedOutput, parse_output
from .prompt import chat_template, render_prompt, render_prompt_ids
from .rules import extract_rules, resolve_rule_ids
from .types import (
    CaseSpec,
    Draft,
    DraftStatus,
    FailureReason,
    OriginalDecision,
    PolicySpec,
    Provenance,
    ReasoningEffort,
    Rule,
)


def policy_spec(version_id: str, text: str, **kwargs: object) -> PolicySpec:
    """A PolicySpec with its sha256 and extracted rules filled in (callers may pass their own)."""
    import hashlib

    kwargs.setdefault("rules", extract_rules(text))
    return PolicySpec(
        version_id=version_id,
        text=text,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        **kwargs,  # type: ignore[arg-type]
    )


__all__ = [
    "CaseSpec",
    "Draft",
    "DraftStatus",
    "Engine",
    "EngineConfig",
    "FailureReason",
    "OriginalDecision",
    "ParsedOutput",
    "PolicySpec",
    "Provenance",
    "ReasoningEffort",
    "Rule",
    "chat_template",
    "check_policy",
    "detect_injection",
    "extract_rules",
    "get_engine",
    "neutralise",
    "parse_output",
    "policy_spec",
    "render_prompt",
    "render_prompt_ids",
    "resolve_rule_ids",
    "unavailable_reason",
]
