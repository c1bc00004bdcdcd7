"""Finding the rule ids a policy text defines, and matching the ids a model cites against them.

Policies written for gpt-oss-safeguard name their rules with short codes: a tier such as `GV1`
(`GV0` is the allowed tier by convention) introduced in a section heading, and sub-rules such as
`GV1.a` at the start of a line inside that section. `extract_rules` turns a policy text into
`Rule`s (id + the text that defines it) so a draft's citations can be checked and shown to the
reviewer with their wording. Nothing here needs a model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .types import Rule

# A rule id: 1-5 capital letters, a tier number, optionally `.suffix` (GV1, GV1.a, SP2.b, H2.f).
_ID = r"[A-Z]{1,5}\d{1,3}(?:\.[a-z0-9]{1,3})?"
RULE_ID_RE = re.compile(rf"\b({_ID})\b")

# A tier introduced in a heading, e.g. "## Allowed Content (GV0 - Non-graphic ...)" or the spam
# policy's "✅ Allowed Content (SP0 – Non-Spam ...)": a code in parentheses followed by a dash.
_TIER_IN_PARENS = re.compile(r"\(\s*([A-Z]{1,5}\d{1,3})\s*[-–—:]")
# A markdown heading that carries a tier code anywhere ("## GV1: Graphic depiction").
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*)$")
# A sub-rule (or tier) defined at the start of a line: "- GV1.a Gore detail: ...",
# "SP2.a Cold promotion – ...", "* **H2.f** ...", "- `GV0`: Allowed ...".
_LINE_DEF = re.compile(rf"^\s*(?:[-*•]\s+)?(?:\*\*|`)?({_ID})(?:\*\*|`)?(?=[\s:.)–—-]|$)")
# An all-capitals line such as "LABEL FORMAT" or "AMBIGUITY & ESCALATION" starts a new section in
# plain-text policies (the spam example has no markdown).
_CAPS_HEADING = re.compile(r"^\s*[A-Z][A-Z &/()'-]{3,}:?\s*$")


def _tier_in_heading(line: str) -> str | None:
    match = _TIER_IN_PARENS.search(line)
    if match:
        return match.group(1)
    md = _MD_HEADING.match(line)
    if md:
        codes = re.findall(r"\b([A-Z]{1,5}\d{1,3})\b", md.group(1))
        if len(codes) == 1:
            return codes[0]
    return None


def _is_section_break(line: str) -> bool:
    return bool(_MD_HEADING.match(line) or _CAPS_HEADING.match(line) or _tier_in_heading(line))


def extract_rules(policy_text: str) -> tuple[Rule, ...]:
    """The rules a policy defines, in document order, each id once (its first definition wins).

    A tier's text is its heading and the body up to the next heading; a sub-rule's text is its
    line. Ids mentioned elsewhere (examples, label lists restating tiers) define nothing new
    unless they start a list line of their own, so `- `GV0`: Allowed ...` still counts for a
    policy whose only definition of its tiers is such a list.
    """
    lines = policy_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found: dict[str, str] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        tier = _tier_in_heading(line)
        if tier is not None:
            body = [line.strip()]
            j = i + 1
            while j < len(lines) and not _is_section_break(lines[j]):
                body.append(lines[j].rstrip())
                j += 1
            found.setdefault(tier, _squeeze("\n".join(body)))
            i += 1
            continue
        match = _LINE_DEF.match(line)
        if match:
            rule_id = match.group(1)
            text = re.sub(r"^\s*[-*•]\s+", "", line).strip()
            found.setdefault(rule_id, text)
        i += 1
    return tuple(Rule(id=rule_id, text=text) for rule_id, text in found.items())


def _squeeze(text: str) -> str:
    # Plain-text policies pad sections with runs of blank lines; keep at most one.
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def parent_id(rule_id: str) -> str | None:
    """`GV1` for `GV1.a`; None for a tier."""
    head, dot, _ = rule_id.partition(".")
    return head if dot else None


def tier_number(rule_id: str) -> int | None:
    """The tier's number: 1 for `GV1` and `GV1.a`, 0 for `SP0.c`; None if it is no rule id."""
    match = re.fullmatch(r"[A-Za-z]{1,5}(\d{1,3})(?:\.[A-Za-z0-9]{1,3})?", rule_id.strip())
    return int(match.group(1)) if match else None


def is_allowed_rule(rule_id: str) -> bool:
    """By the convention of published policies a tier numbered 0 (GV0, SP0.b) is allowed content."""
    return tier_number(rule_id) == 0


def resolve_rule_ids(
    cited: Iterable[str], rules: Iterable[Rule]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Split cited ids into (known, unknown), known ones spelled as the policy spells them.

    Matching ignores case and surrounding whitespace/backticks. A cited id the policy does not
    define is still accepted when it is the parent tier of ids it does define (a model citing
    `GV1` where the policy only lists `GV1.a`...); a sub-rule of a defined tier that the policy
    does not list (`GV1.z`) is unknown: citing a rule that does not exist is what reviewers must
    see. Duplicates are dropped, order kept.
    """
    by_lower: dict[str, str] = {}
    parents: dict[str, str] = {}
    for rule in rules:
        by_lower.setdefault(rule.id.lower(), rule.id)
        parent = parent_id(rule.id)
        if parent is not None:
            parents.setdefault(parent.lower(), parent)
    known: list[str] = []
    unknown: list[str] = []
    for raw in cited:
        cleaned = str(raw).strip().strip("`'\"*[]() ").strip()
        if not cleaned:
            continue
        key = cleaned.lower()
        resolved = by_lower.get(key) or parents.get(key)
        if resolved is not None:
            if resolved not in known:
                known.append(resolved)
        elif cleaned not in unknown:
            unknown.append(cleaned)
    return tuple(known), tuple(unknown)
