"""Draft policy versions: write, edit until published, diff against any version, check.

A draft is a `PolicyVersion` with status draft; it never drafts cases (cases cite the published
version) but can be evaluated. Publishing freezes it: `mark_published` is a conditional UPDATE
from draft, and `update_draft` refuses anything but a draft. The audited publish step, with the
gate, is `appeals.policy_workbench.publish_version`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from policies.models import Policy, PolicyRule, PolicyVersion
from policies.safeguard.prompt import policy_states_output_format
from policies.safeguard.rules import extract_rules
from policies.services import MAX_POLICY_CHARS, mark_published  # noqa: F401  (used by the workbench)
from policies.signals import policy_draft_edited, policy_version_added

GUIDANCE_TOKENS = (400, 600)  # gpt-oss-safeguard's makers' advice for a policy's length


def _validated_rules(text: str):
    if not text.strip():
        raise ValidationError({"text": "the policy text is empty"})
    if len(text) > MAX_POLICY_CHARS:
        raise ValidationError({"text": f"the policy text is over {MAX_POLICY_CHARS:,} characters"})
    rules = extract_rules(text)
    if not rules:
        raise ValidationError(
            {"text": "no rule ids found: a policy must define rule ids such as GV1 or SP2.b"}
        )
    return rules


def _write_rules(version: PolicyVersion, rules) -> list[int]:
    """Replace the version's rule rows; the ids of the rows removed."""
    removed = list(version.rules.values_list("id", flat=True))
    version.rules.all().delete()
    PolicyRule.objects.bulk_create(
        PolicyRule(version=version, rule_id=rule.id, text=rule.text, position=position)
        for position, rule in enumerate(rules)
    )
    return removed


@transaction.atomic
def create_draft(*, policy: Policy, text: str, actor, via: str = "console") -> PolicyVersion:
    """A new draft, numbered after every existing version of the policy."""
    rules = _validated_rules(text)
    policy = Policy.objects.select_for_update().get(id=policy.id)
    number = (policy.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = PolicyVersion.objects.create(
        policy=policy,
        number=number,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        status=PolicyVersion.Status.DRAFT,
        source="workbench",
        created_by=actor,
    )
    _write_rules(version, rules)
    policy_version_added.send(PolicyVersion, version=version, actor=actor, via=via)
    return version


@transaction.atomic
def update_draft(
    *, version: PolicyVersion, text: str, actor, via: str = "console"
) -> PolicyVersion:
    """Replace a draft's text (and rules). A published version is refused: make a new draft."""
    version = PolicyVersion.objects.select_for_update().get(id=version.id)
    if version.status != PolicyVersion.Status.DRAFT:
        raise ValidationError(f"{version.label} is published and can't be edited: save a new draft")
    rules = _validated_rules(text)
    version.text = text
    version.sha256 = hashlib.sha256(text.encode()).hexdigest()
    version.save(update_fields=["text", "sha256"])
    removed = _write_rules(version, rules)
    policy_draft_edited.send(
        PolicyVersion, version=version, removed_rule_ids=removed, actor=actor, via=via
    )
    return version


# --- reading a version -----------------------------------------------------------------------


@dataclass(frozen=True)
class RuleChange:
    rule_id: str
    kind: str  # "added" | "removed" | "changed"
    old: str = ""
    new: str = ""


def diff_versions(old: PolicyVersion, new: PolicyVersion) -> tuple[str, list[RuleChange]]:
    """A unified text diff and the rules added, removed and changed between two versions."""
    text = "".join(
        difflib.unified_diff(
            old.text.splitlines(keepends=True),
            new.text.splitlines(keepends=True),
            fromfile=old.label,
            tofile=new.label,
            n=2,
        )
    )
    before = {r.rule_id: r.text for r in old.rules.all()}
    after = {r.rule_id: r.text for r in new.rules.all()}
    changes = [RuleChange(rid, "added", new=after[rid]) for rid in after if rid not in before]
    changes += [RuleChange(rid, "removed", old=before[rid]) for rid in before if rid not in after]
    changes += [
        RuleChange(rid, "changed", old=before[rid], new=after[rid])
        for rid in after
        if rid in before and before[rid].strip() != after[rid].strip()
    ]
    return text, changes


_PRE_TOKEN = re.compile(r"[A-Za-z]+|\d{1,3}|[^\sA-Za-z\d]+|\s+")


def count_tokens(text: str) -> tuple[int, bool]:
    """(tokens, exact). Exact with tiktoken's o200k_base (gpt-oss's vocabulary) when its file is
    already cached here (TIKTOKEN_CACHE_DIR); otherwise an estimate from o200k-like pre-tokens
    (words, numbers, punctuation runs), which lands within about 10% on English policy text."""
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        try:
            import tiktoken

            return len(tiktoken.get_encoding("o200k_base").encode(text)), True
        except Exception:  # not installed or not cached: fall back to the estimate
            pass
    pieces = _PRE_TOKEN.findall(text)
    estimate = sum(1 + len(p) // 8 for p in pieces if not p.isspace() or "\n\n" in p or len(p) > 4)
    return estimate, False


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


# A line that defines a rule; a labelled example ('- SP2: "Buy now"') defines nothing.
_LINE_RULE = re.compile(
    r"^\s*(?:[-*•]\s+)?(?:\*\*|`)?([A-Z]{1,5}\d{1,3}(?:\.[a-z0-9]{1,3})?)\b(?!:\s*[\"“])",
    re.M,
)
_EXAMPLE = re.compile(r"\bexamples?\b|\"[^\"\n]{3,}\"|“[^”\n]{3,}”", re.IGNORECASE)


def check_version(version: PolicyVersion) -> list[Check]:
    """The author's checklist: length, output format, rule ids, examples."""
    text = version.text
    tokens, exact = count_tokens(text)
    low, high = GUIDANCE_TOKENS
    rules = list(version.rules.all())
    defined_at_line_start = _LINE_RULE.findall(text)
    duplicates = sorted({r for r in defined_at_line_start if defined_at_line_start.count(r) > 1})
    tiers = [r.rule_id for r in rules if "." not in r.rule_id]
    uncited = [t for t in tiers if len(re.findall(rf"\b{re.escape(t)}\b", text)) < 1]
    subrules_of = {t: [r for r in rules if r.rule_id.startswith(t + ".")] for t in tiers}
    bare_tiers = [
        t
        for t in tiers
        if not subrules_of[t] and len(next(r.text for r in rules if r.rule_id == t)) < 40
    ]
    return [
        Check(
            "length",
            low <= tokens <= high,
            f"{'' if exact else '≈'}{tokens} tokens; the guidance is {low}–{high}",
        ),
        Check(
            "output format",
            True,
            "stated by the policy"
            if policy_states_output_format(text)
            else "not stated: the engine adds its JSON output instruction",
        ),
        Check(
            "rule ids unique",
            not duplicates,
            "each rule id is defined once"
            if not duplicates
            else f"defined more than once: {', '.join(duplicates)}",
        ),
        Check(
            "criteria",
            not bare_tiers and not uncited,
            f"{len(rules)} rules, {len(tiers)} tiers"
            + (f"; tiers without criteria: {', '.join(bare_tiers)}" if bare_tiers else ""),
        ),
        Check(
            "examples",
            bool(_EXAMPLE.search(text)),
            "examples present" if _EXAMPLE.search(text) else "no examples found",
        ),
    ]
