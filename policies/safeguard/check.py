"""A policy author's check: run one text through the engine and print everything the model did.

`manage.py safeguard_check` is a thin wrapper over `check_policy`; the report shows the prompt
size, the reasoning, the parsed answer and every cited rule with the policy's own wording, so an
author can see whether the policy says what they meant.
"""

from __future__ import annotations

import datetime as dt
import textwrap

from .config import EngineConfig
from .engine import get_engine
from .types import CaseSpec, Draft, PolicySpec


def check_policy(
    policy: PolicySpec,
    text: str,
    config: EngineConfig,
    *,
    conversation_date: dt.date,
) -> str:
    """Draft `text` under `policy` with `config` and return a printable report."""
    engine = get_engine(config)
    draft = engine.draft(
        policy, [CaseSpec(key="check", content=text)], conversation_date=conversation_date
    )[0]
    return format_report(policy, draft)


def format_report(policy: PolicySpec, draft: Draft) -> str:
    p = draft.provenance
    lines = [
        f"Policy: {policy.name or policy.version_id} (version {policy.version_id}, sha256 {policy.sha256[:12]}), "
        f"{len(policy.rules)} rules defined",
        f"Model: {p.backend} / {p.model_id} {p.model_revision}".rstrip(),
        f"Prompt: {p.tokens_in} tokens" if p.tokens_in else "Prompt: not run (token count unknown)",
        f"Reasoning effort: {p.reasoning_effort}; conversation date: {p.conversation_date.isoformat()}; "
        f"prompt sha256 {p.prompt_sha256[:12]}",
        f"Output: {p.tokens_out} tokens in {p.latency_ms} ms ({p.attempts} attempt{'s' if p.attempts != 1 else ''})",
    ]
    if draft.injection_signals:
        lines.append("Injection signals: " + "; ".join(draft.injection_signals))
    lines.append("")
    if not draft.is_ready:
        lines.append(
            f"FAILED: {draft.failure_reason.value if draft.failure_reason else '?'}: {draft.failure_detail}"
        )
    if draft.reasoning:
        lines += ["Reasoning:", textwrap.indent(draft.reasoning.strip(), "  "), ""]
    if draft.is_ready:
        verdict = "VIOLATES" if draft.violation else "does not violate"
        lines.append(
            f"Answer: {verdict}; category {draft.policy_category or '-'}; confidence {draft.confidence or '-'}"
        )
        if draft.rationale:
            lines.append(f"Rationale: {draft.rationale}")
        lines.append("")
        lines.append("Cited rules:" if draft.rule_ids else "Cited rules: none")
        by_lower = {rule.id.lower(): rule for rule in policy.rules}
        for rule_id in draft.rule_ids:
            rule = by_lower.get(rule_id.lower())
            if rule is not None:
                first, _, rest = rule.text.partition("\n")
                lines.append(f"  {rule_id}: {first}")
                if rest.strip():
                    lines.append(textwrap.indent(textwrap.shorten(rest.strip(), 400), "      "))
            else:
                lines.append(f"  {rule_id}: (parent tier of rules the policy defines)")
        if draft.unknown_rule_ids:
            lines.append(
                "Cited but not defined by this policy: " + ", ".join(draft.unknown_rule_ids)
            )
    if draft.raw_output:
        lines += ["", "Raw output:", textwrap.indent(draft.raw_output.strip(), "  ")]
    return "\n".join(lines) + "\n"
