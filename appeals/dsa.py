"""Statements of reasons for the EU DSA Transparency Database, from decisions.

Field names and enum values follow the database's API exactly (digital-services-act/
transparency-database, app/Http/Requests/StatementStoreRequest.php at 69e80a0b; the enum
constants below are its keys). Output is JSON Lines, one line per API call: each line is a body
for `POST /api/v1/statements`, `{"statements": [...]}` with at most 100 statements.

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

from policies.models import Policy

BATCH_SIZE = 100  # the API's bulk endpoint takes 1..100 statements per call
DEFAULTS_PATH = Path(__file__).with_name("dsa_defaults.json")

# --- The database's enum keys (StatementStoreRequest.php) ------------------------------------
CATEGORIES = frozenset(
    {
        "STATEMENT_CATEGORY_ANIMAL_WELFARE",
        "STATEMENT_CATEGORY_CONSUMER_INFORMATION",
        "STATEMENT_CATEGORY_CYBER_VIOLENCE",
        "STATEMENT_CATEGORY_CYBER_VIOLENCE_AGAINST_WOMEN",
        "STATEMENT_CATEGORY_DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
        "STATEMENT_CATEGORY_ILLEGAL_OR_HARMFUL_SPEECH",
        "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
        "STATEMENT_CATEGORY_NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
        "STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE",
        "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
        "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "STATEMENT_CATEGORY_RISK_FOR_PUBLIC_SECURITY",
        "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
        "STATEMENT_CATEGORY_SELF_HARM",
        "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS",
        "STATEMENT_CATEGORY_VIOLENCE",
    }
)

KEYWORDS = frozenset(
    {
        "KEYWORD_ADULT_SEXUAL_MATERIAL",
        "KEYWORD_AGE_SPECIFIC_RESTRICTIONS",
        "KEYWORD_AGE_SPECIFIC_RESTRICTIONS_MINORS",
        "KEYWORD_ANIMAL_HARM",
        "KEYWORD_BIOMETRIC_DATA_BREACH",
        "KEYWORD_BULLYING_AGAINST_GIRLS",
        "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
        "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE",
        "KEYWORD_CONTENT_PROMOTING_EATING_DISORDERS",
        "KEYWORD_COORDINATED_HARM",
        "KEYWORD_COPYRIGHT_INFRINGEMENT",
        "KEYWORD_CYBER_BULLYING_INTIMIDATION",
        "KEYWORD_CYBER_HARASSMENT",
        "KEYWORD_CYBER_HARASSMENT_AGAINST_WOMEN",
        "KEYWORD_CYBER_INCITEMENT",
        "KEYWORD_CYBER_STALKING",
        "KEYWORD_CYBER_STALKING_AGAINST_WOMEN",
        "KEYWORD_DATA_FALSIFICATION",
        "KEYWORD_DEFAMATION",
        "KEYWORD_DESIGN_INFRINGEMENT",
        "KEYWORD_DISCRIMINATION",
        "KEYWORD_FEMALE_GENDERED_DISINFORMATION",
        "KEYWORD_GEOGRAPHIC_INDICATIONS_INFRINGEMENT",
        "KEYWORD_GEOGRAPHICAL_REQUIREMENTS",
        "KEYWORD_GOODS_SERVICES_NOT_PERMITTED",
        "KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS",
        "KEYWORD_HATE_SPEECH",
        "KEYWORD_HIDDEN_ADVERTISEMENT",
        "KEYWORD_HUMAN_EXPLOITATION",
        "KEYWORD_HUMAN_TRAFFICKING",
        "KEYWORD_ILLEGAL_ORGANIZATIONS",
        "KEYWORD_IMPERSONATION_ACCOUNT_HIJACKING",
        "KEYWORD_INAUTHENTIC_ACCOUNTS",
        "KEYWORD_INAUTHENTIC_LISTINGS",
        "KEYWORD_INAUTHENTIC_USER_REVIEWS",
        "KEYWORD_INCITEMENT_AGAINST_WOMEN",
        "KEYWORD_INCITEMENT_VIOLENCE_HATRED",
        "KEYWORD_INSUFFICIENT_INFORMATION_ON_TRADERS",
        "KEYWORD_LANGUAGE_REQUIREMENTS",
        "KEYWORD_MISINFORMATION_DISINFORMATION",
        "KEYWORD_MISLEADING_INFO_CONSUMER_RIGHTS",
        "KEYWORD_MISLEADING_INFO_GOODS_SERVICES",
        "KEYWORD_MISSING_PROCESSING_GROUND",
        "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING",
        "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING_AGAINST_WOMEN",
        "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE",
        "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE_AGAINST_WOMEN",
        "KEYWORD_NONCOMPLIANCE_PRICING",
        "KEYWORD_NUDITY",
        "KEYWORD_PATENT_INFRINGEMENT",
        "KEYWORD_PHISHING",
        "KEYWORD_PROHIBITED_PRODUCTS",
        "KEYWORD_PYRAMID_SCHEMES",
        "KEYWORD_RIGHT_TO_BE_FORGOTTEN",
        "KEYWORD_RISK_ENVIRONMENTAL_DAMAGE",
        "KEYWORD_RISK_PUBLIC_HEALTH",
        "KEYWORD_SELF_MUTILATION",
        "KEYWORD_STALKING",
        "KEYWORD_SUICIDE",
        "KEYWORD_TERRORIST_CONTENT",
        "KEYWORD_TRADE_SECRET_INFRINGEMENT",
        "KEYWORD_TRADEMARK_INFRINGEMENT",
        "KEYWORD_TRAFFICKING_WOMEN_GIRLS",
        "KEYWORD_UNLAWFUL_SALE_ANIMALS",
        "KEYWORD_UNSAFE_CHALLENGES",
        "KEYWORD_UNSAFE_PRODUCTS",
        "KEYWORD_VIOLATION_EU_LAW",
        "KEYWORD_VIOLATION_NATIONAL_LAW",
        "KEYWORD_OTHER",
    }
)

DECISION_GROUNDS = frozenset(
    {
        "DECISION_GROUND_ILLEGAL_CONTENT",
        "DECISION_GROUND_INCOMPATIBLE_CONTENT",
    }
)

VISIBILITIES = frozenset(
    {
        "DECISION_VISIBILITY_CONTENT_REMOVED",
        "DECISION_VISIBILITY_CONTENT_DISABLED",
        "DECISION_VISIBILITY_CONTENT_DEMOTED",
        "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
        "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
        "DECISION_VISIBILITY_CONTENT_LABELLED",
        "DECISION_VISIBILITY_OTHER",
    }
)

CONTENT_TYPES = frozenset(
    {
        "CONTENT_TYPE_APP",
        "CONTENT_TYPE_AUDIO",
        "CONTENT_TYPE_IMAGE",
        "CONTENT_TYPE_PRODUCT",
        "CONTENT_TYPE_SYNTHETIC_MEDIA",
        "CONTENT_TYPE_TEXT",
        "CONTENT_TYPE_VIDEO",
        "CONTENT_TYPE_OTHER",
    }
)

SOURCE_TYPES = frozenset(
    {
        "SOURCE_ARTICLE_16",
        "SOURCE_TRUSTED_FLAGGER",
        "SOURCE_TYPE_OTHER_NOTIFICATION",
        "SOURCE_VOLUNTARY",
    }
)

AUTOMATED_DECISIONS = frozenset(
    {
        "AUTOMATED_DECISION_FULLY",
        "AUTOMATED_DECISION_PARTIALLY",
        "AUTOMATED_DECISION_NOT_AUTOMATED",
    }
)

COUNTRY_CODES = frozenset(
    {
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IS",
        "IT",
        "LI",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "NO",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    }
)

YES_NO = ("Yes", "No")  # automated_detection and incompatible_content_illegal take the values

GROUND_ILLEGAL = "DECISION_GROUND_ILLEGAL_CONTENT"
GROUND_INCOMPATIBLE = "DECISION_GROUND_INCOMPATIBLE_CONTENT"

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

ENTRY_KEYS = {
    "category": "one STATEMENT_CATEGORY_… key",
    "category_addition": "a list of STATEMENT_CATEGORY_… keys",
    "category_specification": "a list of KEYWORD_… keys",
    "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT or DECISION_GROUND_INCOMPATIBLE_CONTENT",
    "legal_ground": "the law relied on (required with the illegal-content ground), ≤ 500 chars",
    "incompatible_content_illegal": '"Yes" or "No"',
    "reference_url": "a URL to the terms or law, ≤ 500 chars",
    "territorial_scope": "a list of EEA country codes",
    "visibility": "an object: action (remove, restrict, label) → DECISION_VISIBILITY_… key",
}

_PUID_OK = re.compile(r"^[a-zA-Z0-9_-]+$")
_PUID_BAD = re.compile(r"[^a-zA-Z0-9_-]")


# --- Validating a policy's mapping ------------------------------------------------------------


def _entry_problems(where: str, entry) -> list[str]:
    if not isinstance(entry, dict):
        return [f"{where} must be an object"]
    problems = []
    for key in entry:
        if key not in ENTRY_KEYS:
            problems.append(f"{where}: unknown key {key!r} (known: {', '.join(ENTRY_KEYS)})")

    def one_of(key: str, allowed, label: str) -> None:
        if key in entry and entry[key] not in allowed:
            problems.append(f"{where}.{key}: {entry[key]!r} is not {label}")

    def list_of(key: str, allowed, label: str) -> None:
        if key not in entry:
            return
        value = entry[key]
        if not isinstance(value, list):
            problems.append(f"{where}.{key} must be a list of {label}")
            return
        for item in value:
            if item not in allowed:
                problems.append(f"{where}.{key}: {item!r} is not {label}")

    def text(key: str, limit: int) -> None:
        if key in entry and (not isinstance(entry[key], str) or len(entry[key]) > limit):
            problems.append(f"{where}.{key} must be text of at most {limit} characters")

    one_of("category", CATEGORIES, "a STATEMENT_CATEGORIES key")
    list_of("category_addition", CATEGORIES, "STATEMENT_CATEGORIES keys")
    list_of("category_specification", KEYWORDS, "KEYWORDS keys")
    one_of("decision_ground", DECISION_GROUNDS, "a DECISION_GROUNDS key")
    one_of("incompatible_content_illegal", YES_NO, '"Yes" or "No"')
    list_of("territorial_scope", COUNTRY_CODES, "EEA country codes")
    text("legal_ground", 500)
    text("reference_url", 500)
    if "reference_url" in entry and not str(entry["reference_url"]).startswith(
        ("https://", "http://")
    ):
        problems.append(f"{where}.reference_url must be an http(s) URL")
    if "visibility" in entry:
        visibility = entry["visibility"]
        if not isinstance(visibility, dict):
            problems.append(
                f"{where}.visibility must be an object: action → DECISION_VISIBILITY_… key"
            )
        else:
            for action, key in visibility.items():
                if action not in VISIBILITY_FOR_ACTION:
                    problems.append(
                        f"{where}.visibility: {action!r} is not an action "
                        f"({', '.join(VISIBILITY_FOR_ACTION)})"
                    )
                # "Other" would need free text we have no field for.
                if key not in VISIBILITIES or key == "DECISION_VISIBILITY_OTHER":
                    problems.append(
                        f"{where}.visibility.{action}: {key!r} is not a "
                        "DECISION_VISIBILITIES key (other than …_OTHER)"
                    )
    return problems


def mapping_problems(mapping) -> list[str]:
    """Everything wrong with a policy's `dsa_mapping`, in words ([] when it is fine or empty)."""
    if mapping in (None, {}):
        return []
    if not isinstance(mapping, dict):
        return ['the DSA mapping must be an object with "default" and/or "rules"']
    problems = []
    for key in mapping:
        if key not in ("default", "rules"):
            problems.append(f'unknown key {key!r}: the mapping has "default" and "rules"')
    default = mapping.get("default", {})
    problems += _entry_problems("default", default)
    rules = mapping.get("rules", {})
    if not isinstance(rules, dict):
        problems.append("rules must be an object: rule id → entry")
        rules = {}
    for rule_id, entry in rules.items():
        problems += _entry_problems(f"rules.{rule_id}", entry)
    # Every rule must end up with a category and a ground, and a legal ground if illegal.
    if isinstance(default, dict):
        for where, entry in [("default", {}), *((f"rules.{r}", e) for r, e in rules.items())]:
            if not isinstance(entry, dict):
                continue
            merged = {**default, **entry}
            if "category" not in merged:
                problems.append(f"{where}: no category (set one in default or here)")
            if "decision_ground" not in merged:
                problems.append(f"{where}: no decision_ground (set one in default or here)")
            elif merged["decision_ground"] == GROUND_ILLEGAL and not merged.get("legal_ground"):
                problems.append(f"{where}: the illegal-content ground needs a legal_ground")
    return problems


def validate_dsa_mapping(mapping) -> None:
    """Raise a ValidationError on the `dsa_mapping` field (for forms, the admin and commands)."""
    problems = mapping_problems(mapping)
    if problems:
        raise ValidationError({"dsa_mapping": problems})


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
    if action not in VISIBILITY_FOR_ACTION:
        return False
    if kind == "appeal":
        return outcome == "overturn"
    return outcome == "violating"


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

    `record` is a row of `appeals.exports` (COLUMNS → value). No personal data goes in: no user
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
