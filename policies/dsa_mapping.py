"""The EU DSA Transparency Database's vocabulary, and the check of a policy's `dsa_mapping`.

A policy maps its rules to the database's statement categories and decision grounds
(`Policy.dsa_mapping`, see `appeals.disclosure.dsa` for how statements are built from it). The enum keys
below are the database API's own (digital-services-act/transparency-database,
app/Http/Requests/StatementStoreRequest.php at 69e80a0b). They live here, beside the field they
check, so that the policy admin refuses a broken mapping when it is saved, not when an export
meets it.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

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

# The actions a mapping's `visibility` may name: the ones that restrict content (the case
# actions of `appeals.outcomes.REMOVING_ACTIONS`; a test keeps the two in step).
MAPPED_ACTIONS = ("remove", "restrict", "label")

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
                if action not in MAPPED_ACTIONS:
                    problems.append(
                        f"{where}.visibility: {action!r} is not an action "
                        f"({', '.join(MAPPED_ACTIONS)})"
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
