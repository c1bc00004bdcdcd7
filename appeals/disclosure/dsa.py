"""Statements of reasons for the EU DSA Transparency Database, from decisions.

Field names and enum values follow the database's API exactly (digital-services-act/
transparency-database, app/Http/Requests/StatementStoreRequest.php at 69e80a0b; the enum keys
are in `policies.dsa_mapping`, beside the policy field they check). Output is JSON Lines, one
line per API call: each line is a body for `POST /api/v1/statements`, `{"statements": [...]}`
with at most 100 statements.

Which decisions produce a statement: those that impose a restriction here. A flag found
violating (remove, restrict or label), and an appeal that overturns a "no action" decision into
one. A "not violating" call, an overturn that lifts a restriction, and an upheld restriction
(already reported when it was imposed; the database keeps one statement per `puid`) produce none.

Each policy maps its rules to a category and a decision ground with `Policy.dsa_mapping`:

    {"default": {"category": "STATEMENT_CATEGORY_…", "decision_ground": "DECISION_GROUND_…", …},
     "rules": {"SP3": {…}, "SP3.b": {…}}}

A rule's entry is `default`, overlaid by its tier's entry (`SP3`), overlaid by its own (`SP3.b`).
Policies with an empty mapping use `dsa_defaults.json` (keyed by policy slug), else
`FALLBACK_MAPPING`.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path

from django.core.exceptions import ValidationError

from appeals.outcomes import restricts_content
from policies.dsa_mapping import (
    GROUND_ILLEGAL,
    GROUND_INCOMPATIBLE,
    mapping_problems,
    validate_dsa_mapping,
)
from policies.models import Policy

BATCH_SIZE = 100  # the API's bulk endpoint takes 1..100 statements per call
DEFAULTS_PATH = Path(__file__).with_name("dsa_defaults.json")

# What our actions do to the content, in the database's terms.
# - remove: the content is taken down → removal.
# - restrict: the content stays up but reaches fewer people (not shown in feeds, search or
#   recommendations) → demotion. "Disabling access" would mean nobody can reach it at all, which
#   is removal by another name. Policies whose "restrict" means something else (the teen-safety
#   policies: only adults may see it) say so in their mapping's `visibility`.
# - label: a warning or context label on the content → labelled content.
VISIBILITY_FOR_ACTION = {
    "remove": "DECISION_VISIBILITY_CONTENT_REMOVED",
    "restrict": "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "label": "DECISION_VISIBILITY_CONTENT_LABELLED",
}
CONTENT_TYPE_FOR_ITEM = {
    "text": "CONTENT_TYPE_TEXT",
    "image": "CONTENT_TYPE_IMAGE",
    "video": "CONTENT_TYPE_VIDEO",
    "audio": "CONTENT_TYPE_AUDIO",
    "other": "CONTENT_TYPE_OTHER",
}

FALLBACK_MAPPING = {
    "default": {
        "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
        "decision_ground": GROUND_INCOMPATIBLE,
        "incompatible_content_illegal": "No",
    }
}

_PUID_OK = re.compile(r"^[a-zA-Z0-9_-]+$")
_PUID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


@cache
def default_mappings() -> dict[str, dict]:
    """The shipped mappings for the demo policies, keyed by policy slug."""
    data = json.loads(DEFAULTS_PATH.read_text())
    return {slug: mapping for slug, mapping in data.items() if not slug.startswith("_")}


def effective_mapping(slug: str, mapping) -> dict:
    return mapping or default_mappings().get(slug) or FALLBACK_MAPPING


def entry_for_rule(mapping: dict, rule_id: str) -> dict:
    rules = mapping.get("rules", {})
    tier = rule_id.split(".", 1)[0]
    return {**mapping.get("default", {}), **rules.get(tier, {}), **rules.get(rule_id, {})}


class MappingResolver:
    """Policy id → its effective mapping, one query per policy, checked before use."""

    def __init__(self) -> None:
        self._by_policy: dict[int, dict] = {}

    def for_policy(self, policy_id: int, slug: str) -> dict:
        mapping = self._by_policy.get(policy_id)
        if mapping is None:
            stored = (
                Policy.objects.filter(id=policy_id).values_list("dsa_mapping", flat=True).first()
            )
            mapping = effective_mapping(slug, stored)
            validate_dsa_mapping(mapping)
            self._by_policy[policy_id] = mapping
        return mapping

    def check_policies(self, slug: str = "") -> None:
        """Refuse to start an export if any policy in it has a broken mapping."""
        policies = Policy.objects.order_by("slug")
        if slug:
            policies = policies.filter(slug=slug)
        problems = []
        for policy_id, policy_slug, stored in policies.values_list("id", "slug", "dsa_mapping"):
            mapping = effective_mapping(policy_slug, stored)
            problems += [f"policy {policy_slug!r}: {p}" for p in mapping_problems(mapping)]
            self._by_policy[policy_id] = mapping
        if problems:
            raise ValidationError(problems)


# --- Building statements ----------------------------------------------------------------------


def puid_for(external_id: str) -> str:
    """The platform's own item id, if the database accepts it (^[a-zA-Z0-9_-]+$, ≤ 500).

    Otherwise the id with each other character replaced by "_" and a short hash of the original
    appended, so two different ids never collide and the same id always maps the same way.
    """
    if _PUID_OK.match(external_id) and len(external_id) <= 500:
        return external_id
    digest = hashlib.sha256(external_id.encode()).hexdigest()[:16]
    return f"{_PUID_BAD.sub('_', external_id)[:480]}-{digest}"


def imposes_restriction(kind: str, outcome: str, action: str) -> bool:
    return restricts_content(is_appeal=kind == "appeal", outcome=outcome, action=action)


_SOURCE_PHRASES = {
    "user_report": "a notice from a user",
    "trusted_flagger": "a notice from a trusted flagger",
    "automated": "automated detection",
    "own_initiative": "our own review",
}
_ACTION_PHRASES = {
    "remove": "The content was removed.",
    "restrict": "The content's visibility was restricted.",
    "label": "A label was added to the content.",
}


def _source_type(source: str, ground: str) -> str:
    if source == "trusted_flagger":
        return "SOURCE_TRUSTED_FLAGGER"
    if source == "user_report":
        # Art. 16 notices are notices of illegal content; a report under our terms is another kind.
        return "SOURCE_ARTICLE_16" if ground == GROUND_ILLEGAL else "SOURCE_TYPE_OTHER_NOTIFICATION"
    return "SOURCE_VOLUNTARY"  # automated detection and own-initiative review


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def statement_for(
    record: dict, mapping: dict, *, rule_lines: tuple[str, ...] = (), policy_name: str = ""
) -> dict | None:
    """The statement of reasons for one exported decision row, or None if it restricts nothing.

    `record` is a row of `appeals.disclosure.exports` (COLUMNS → value). No personal data goes in: no user
    ids, no content, no reviewer; the facts are the policy's rules and what was done.
    """
    kind, outcome, action = record["case_kind"], record["outcome"], record["action"]
    if not imposes_restriction(kind, outcome, action):
        return None
    rule_ids = list(record["rule_ids"] or [])
    entries = [entry_for_rule(mapping, rule_id) for rule_id in rule_ids] or [
        entry_for_rule(mapping, "")
    ]
    primary = entries[0]
    category = primary["category"]
    additions: list[str] = []
    keywords: list[str] = []
    for entry in entries:
        for extra in [entry["category"], *entry.get("category_addition", [])]:
            if extra != category and extra not in additions:
                additions.append(extra)
        for keyword in entry.get("category_specification", []):
            if keyword not in keywords:
                keywords.append(keyword)
    ground = primary["decision_ground"]
    source = record["source"]
    policy_label = (
        f"{policy_name or record['policy']} policy ({record['policy']} v{record['policy_version']})"
    )
    rules_text = ", ".join(rule_ids)
    explanation = (
        "The content breaks "
        + ("; ".join(rule_lines) if rule_lines else f"rules {rules_text}")
        + f" of our {policy_label}."
    )

    facts = [
        f"Decided by a person on the review team, following {_SOURCE_PHRASES.get(source, 'a notice')}.",
        f"The content was found to break our {policy_label}, rules {rules_text}.",
    ]
    if kind == "appeal":
        facts.append(
            "The decision was taken on appeal, by a reviewer other than the one who "
            "took the original decision, and reverses an earlier decision to take no action."
        )
    if record["recommendation_id"] is not None:
        facts.append(
            "An automated system drafted a recommendation, which the reviewer checked "
            "before deciding."
        )
    facts.append(_ACTION_PHRASES[action])

    visibility = {**VISIBILITY_FOR_ACTION, **primary.get("visibility", {})}[action]
    content_type = CONTENT_TYPE_FOR_ITEM.get(record["content_type"], "CONTENT_TYPE_OTHER")
    content_at = record["flagged_at"] or record["received_at"]

    statement: dict = {
        "decision_visibility": [visibility],
        "decision_ground": ground,
        "category": category,
        "content_type": [content_type],
        "content_date": content_at[:10],  # the exported times are ISO text in UTC
        "application_date": record["decided_at"][:10],
        "decision_facts": _clip(" ".join(facts), 5000),
        "source_type": _source_type(source, ground),
        "automated_detection": "Yes" if source == "automated" else "No",
        "automated_decision": (
            "AUTOMATED_DECISION_PARTIALLY"
            if record["recommendation_id"] is not None
            else "AUTOMATED_DECISION_NOT_AUTOMATED"
        ),
        "puid": puid_for(record["item_external_id"]),
    }
    if content_type == "CONTENT_TYPE_OTHER":
        statement["content_type_other"] = "Content of a type the platform did not specify"
    if additions:
        statement["category_addition"] = additions
    if keywords:
        statement["category_specification"] = keywords
    if ground == GROUND_ILLEGAL:
        statement["illegal_content_legal_ground"] = _clip(primary["legal_ground"], 500)
        statement["illegal_content_explanation"] = _clip(explanation, 2000)
    else:
        statement["incompatible_content_ground"] = _clip(f"{policy_label}, rules {rules_text}", 500)
        statement["incompatible_content_explanation"] = _clip(explanation, 2000)
        statement["incompatible_content_illegal"] = primary.get(
            "incompatible_content_illegal", "No"
        )
    if primary.get("reference_url"):
        statement["decision_ground_reference_url"] = primary["reference_url"]
    if primary.get("territorial_scope"):
        statement["territorial_scope"] = list(primary["territorial_scope"])
    return statement


def batch_line(statements: list[dict]) -> str:
    """One body for `POST /api/v1/statements`, as one line of JSON."""
    if not 1 <= len(statements) <= BATCH_SIZE:
        raise ValueError(f"a batch holds 1 to {BATCH_SIZE} statements, not {len(statements)}")
    return json.dumps({"statements": statements}, ensure_ascii=False) + "\n"
