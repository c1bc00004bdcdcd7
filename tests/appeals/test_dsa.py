"""DSA statements of reasons: every statement we export is valid against the database's spec.

The spec is the Transparency Database's field list and enums as kept in the shared data
(`statement-of-reasons.json`); set DSA_SPEC_PATH to point at another copy.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from appeals.disclosure import dsa
from appeals.disclosure.exports import Export, ExportFilters
from appeals.outcomes import REMOVING_ACTIONS
from policies import dsa_mapping
from policies.models import Policy
from tests.builders import appeal, decide, flag, make_policy
from tests.paths import SHARED, shared_path
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

SPEC_PATH = Path(os.environ.get("DSA_SPEC_PATH", SHARED / "dsa" / "statement-of-reasons.json"))
TEEN_SLUGS = (
    "age-restricted-goods-and-services",
    "dangerous-content",
    "dangerous-roleplay",
    "graphic-sexual-content",
    "graphic-violent-content",
    "harmful-body-ideals",
)


@pytest.fixture(scope="module")
def spec():
    if not SPEC_PATH.exists():
        pytest.fail(
            f"the DSA spec file is not at {SPEC_PATH} (../shared/dsa beside the checkout, or set "
            "DSA_SPEC_PATH)",
            pytrace=False,
        )
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture
def real_spam_policy(spam_policy):
    """The published spam policy (SP2-SP4 with their sub-rules), as a new version of `spam`."""
    return make_policy("spam", shared_path("spam-policy-example", "policy.txt").read_text())


def _keys(spec, name):
    value = spec["enums"][name]
    return set(value) if isinstance(value, dict) else set(value)


def spec_field_names(spec) -> set[str]:
    names = set()
    for key in spec["fields"]:
        names.update(key.split("|"))
    return names


def assert_valid_statement(statement: dict, spec) -> None:
    """Check one statement against the API's rules as the spec file states them."""
    enums = spec["enums"]
    unknown = set(statement) - spec_field_names(spec)
    assert not unknown, f"fields the API does not know: {unknown}"
    required = {
        "category",
        "decision_ground",
        "content_type",
        "content_date",
        "application_date",
        "decision_facts",
        "source_type",
        "automated_detection",
        "automated_decision",
        "puid",
    }
    assert required <= set(statement), f"missing: {required - set(statement)}"

    restrictions = (
        "decision_visibility",
        "decision_monetary",
        "decision_provision",
        "decision_account",
    )
    assert any(statement.get(k) for k in restrictions), "needs at least one restriction"
    for value in statement.get("decision_visibility") or []:
        assert value in enums["DECISION_VISIBILITIES"]
    assert ("DECISION_VISIBILITY_OTHER" in (statement.get("decision_visibility") or [])) == (
        "decision_visibility_other" in statement
    )
    if statement.get("decision_monetary"):
        assert statement["decision_monetary"] in enums["DECISION_MONETARIES"]
    if statement.get("decision_provision"):
        assert statement["decision_provision"] in enums["DECISION_PROVISIONS"]
    if statement.get("decision_account"):
        assert statement["decision_account"] in enums["DECISION_ACCOUNTS"]

    assert statement["category"] in enums["STATEMENT_CATEGORIES"]
    for value in statement.get("category_addition", []):
        assert value in enums["STATEMENT_CATEGORIES"]
        assert value != statement["category"]
    for value in statement.get("category_specification") or []:
        assert value in enums["KEYWORDS"]

    ground = statement["decision_ground"]
    assert ground in enums["DECISION_GROUNDS"]
    illegal = ("illegal_content_legal_ground", "illegal_content_explanation")
    incompatible = ("incompatible_content_ground", "incompatible_content_explanation")
    if ground == "DECISION_GROUND_ILLEGAL_CONTENT":
        assert all(statement.get(k) for k in illegal)
        assert not any(k in statement for k in (*incompatible, "incompatible_content_illegal"))
    else:
        assert all(statement.get(k) for k in incompatible)
        assert not any(k in statement for k in illegal)
        assert (
            statement.get("incompatible_content_illegal", "No")
            in enums["INCOMPATIBLE_CONTENT_ILLEGALS"]
        )

    assert statement["content_type"] and all(
        v in enums["CONTENT_TYPES"] for v in statement["content_type"]
    )
    assert ("CONTENT_TYPE_OTHER" in statement["content_type"]) == (
        "content_type_other" in statement
    )

    for value in statement.get("territorial_scope") or []:
        assert (
            value in enums["territorial_scope (EuropeanCountriesService::EUROPEAN_COUNTRY_CODES)"]
        )
    if statement.get("content_language"):
        assert (
            statement["content_language"]
            in enums["content_language (EuropeanLanguagesService::ALL_LANGUAGES keys)"]
        )

    def day(field, low, high):
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", statement[field]), field
        assert low <= dt.date.fromisoformat(statement[field]) <= high, field

    day("content_date", dt.date(2000, 1, 1), dt.date(2038, 1, 1))
    day("application_date", dt.date(2020, 1, 1), dt.date(2038, 1, 1))

    assert statement["source_type"] in enums["SOURCE_TYPES"]
    if statement["source_type"] == "SOURCE_VOLUNTARY":
        assert "source_identity" not in statement
    assert statement["automated_detection"] in enums["AUTOMATED_DETECTIONS"]
    assert statement["automated_decision"] in enums["AUTOMATED_DECISIONS"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", statement["puid"]) and len(statement["puid"]) <= 500

    limits = {
        "decision_facts": 5000,
        "illegal_content_legal_ground": 500,
        "illegal_content_explanation": 2000,
        "incompatible_content_ground": 500,
        "incompatible_content_explanation": 2000,
        "decision_ground_reference_url": 500,
        "content_type_other": 500,
        "decision_visibility_other": 500,
        "category_specification_other": 500,
        "source_identity": 500,
    }
    for field, limit in limits.items():
        if field in statement:
            assert isinstance(statement[field], str) and 0 < len(statement[field]) <= limit, field


def export_statements(**filters) -> tuple[list[list[dict]], Export]:
    export = Export(fmt="dsa", filters=ExportFilters(**filters), actor_label="test")
    batches = [json.loads(line)["statements"] for line in "".join(export.chunks()).splitlines()]
    return batches, export


def statements(**filters) -> list[dict]:
    return [s for batch in export_statements(**filters)[0] for s in batch]


def test_the_enum_keys_in_code_are_the_databases(spec):
    assert dsa_mapping.CATEGORIES == _keys(spec, "STATEMENT_CATEGORIES")
    assert dsa_mapping.KEYWORDS == _keys(spec, "KEYWORDS")
    assert dsa_mapping.DECISION_GROUNDS == _keys(spec, "DECISION_GROUNDS")
    assert dsa_mapping.VISIBILITIES == _keys(spec, "DECISION_VISIBILITIES")
    assert dsa_mapping.CONTENT_TYPES == _keys(spec, "CONTENT_TYPES")
    assert dsa_mapping.SOURCE_TYPES == _keys(spec, "SOURCE_TYPES")
    assert dsa_mapping.AUTOMATED_DECISIONS == _keys(spec, "AUTOMATED_DECISIONS")
    assert set(dsa_mapping.YES_NO) == _keys(spec, "AUTOMATED_DETECTIONS")
    assert set(dsa.CONTENT_TYPE_FOR_ITEM.values()) <= dsa_mapping.CONTENT_TYPES
    assert set(dsa.VISIBILITY_FOR_ACTION.values()) <= dsa_mapping.VISIBILITIES
    # The actions a mapping may name are the case actions that restrict content.
    assert (
        set(dsa_mapping.MAPPED_ACTIONS) == set(REMOVING_ACTIONS) == set(dsa.VISIBILITY_FOR_ACTION)
    )


def test_spam_casework_yields_valid_statements_only_for_restrictions(
    spec, alice, bob, carol, platform, real_spam_policy
):
    ad = flag(platform, external_id="ad-1")
    ready_draft(ad, violation=True, rule_ids=["SP2.b"])
    removal = decide(alice, ad, outcome="violating", action="remove", rule_ids=["SP2.b"])
    decide(
        bob,
        flag(platform, external_id="fine-2", content="How do I upload a pic?"),
        outcome="not_violating",
    )
    decide(
        alice,
        flag(platform, external_id="bot/3:x", source="automated", content_type="other"),
        outcome="violating",
        action="restrict",
        rule_ids=["SP3.b", "SP2.a"],
    )
    decide(
        bob,
        flag(platform, external_id="tf-4", source="trusted_flagger", content_type="image"),
        outcome="violating",
        action="label",
        rule_ids=["SP3"],
    )
    # Appeals: carol upholds one removal (no new statement) ...
    decide(
        carol,
        appeal(platform, item_external_id="ad-1", rule_ids=["SP2.b"]),
        outcome="uphold",
        rule_ids=["SP2.b"],
    )
    # ... and overturns a "no action" into a removal (a new restriction: a statement).
    decide(
        carol,
        appeal(
            platform,
            item_external_id="fine-2",
            outcome="none",
            rule_ids=[],
            statement="The reporter says this is spam.",
        ),
        outcome="overturn",
        action="remove",
        rule_ids=["SP2.a"],
    )

    found = statements()
    for statement in found:
        assert_valid_statement(statement, spec)
    by_puid = {s["puid"]: s for s in found}
    assert len(found) == 4
    assert set(by_puid) == {"ad-1", dsa.puid_for("bot/3:x"), "tf-4", "fine-2"}

    removed = by_puid["ad-1"]
    assert removed["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_REMOVED"]
    assert removed["category"] == "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"
    assert removed["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT"
    assert removed["incompatible_content_illegal"] == "No"
    assert removed["automated_detection"] == "No"
    assert removed["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"  # drafted, then decided
    assert removed["source_type"] == "SOURCE_TYPE_OTHER_NOTIFICATION"
    assert removed["content_type"] == ["CONTENT_TYPE_TEXT"]
    assert "SP2.b" in removed["incompatible_content_ground"]
    assert removed["application_date"] == f"{removal.decided_at:%Y-%m-%d}"
    assert removed["content_date"] == f"{ad.item.received_at:%Y-%m-%d}"

    restricted = by_puid[dsa.puid_for("bot/3:x")]
    assert restricted["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_DEMOTED"]
    assert restricted["automated_detection"] == "Yes"
    assert restricted["automated_decision"] == "AUTOMATED_DECISION_NOT_AUTOMATED"  # no draft
    assert restricted["source_type"] == "SOURCE_VOLUNTARY"
    assert restricted["category"] == "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"  # SP3.b comes first
    assert restricted["category_addition"] == ["STATEMENT_CATEGORY_OTHER_VIOLATION_TC"]
    assert restricted["category_specification"] == ["KEYWORD_PYRAMID_SCHEMES"]
    assert restricted["content_type"] == ["CONTENT_TYPE_OTHER"]

    labelled = by_puid["tf-4"]
    assert labelled["decision_visibility"] == ["DECISION_VISIBILITY_CONTENT_LABELLED"]
    assert labelled["source_type"] == "SOURCE_TRUSTED_FLAGGER"
    assert labelled["content_type"] == ["CONTENT_TYPE_IMAGE"]

    assert "appeal" in by_puid["fine-2"]["decision_facts"]


def test_statements_carry_no_personal_data(spec, alice, platform, spam_policy):
    case = flag(
        platform,
        external_id="p-1",
        author_id="jane.doe@example.com",
        reporter_id="reporter-xyz",
        content="Buy gold rings from Jane Doe, +44 7700 900123",
    )
    ready_draft(case, reasoning="SECRET reasoning", rationale="SECRET rationale")
    decide(
        alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"], note="SECRET note"
    )
    text = json.dumps(statements())
    for private in ("jane", "Jane", "reporter-xyz", "7700", "alice", "SECRET"):
        assert private not in text


def test_batches_hold_at_most_the_api_limit(spec, monkeypatch, alice, platform, spam_policy):
    assert dsa.BATCH_SIZE == 100
    monkeypatch.setattr(dsa, "BATCH_SIZE", 3)
    for i in range(7):
        decide(
            alice,
            flag(platform, external_id=f"b-{i}"),
            outcome="violating",
            action="remove",
            rule_ids=["SP2.b"],
        )
    batches, export = export_statements()
    assert [len(b) for b in batches] == [3, 3, 1]
    assert export.records == 7
    for statement in (s for b in batches for s in b):
        assert_valid_statement(statement, spec)
    with pytest.raises(ValueError):
        dsa.batch_line([])


def test_demo_policies_have_valid_default_mappings():
    mappings = dsa.default_mappings()
    assert set(mappings) == {"spam", *TEEN_SLUGS}
    for slug, mapping in mappings.items():
        assert dsa_mapping.mapping_problems(mapping) == [], slug
    for slug in TEEN_SLUGS:
        assert mappings[slug]["default"]["category"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"


def test_teen_safety_statements_are_valid(spec, alice, platform, roles):
    teen_safety = shared_path("teen-safety-policy-pack", "example_policies")
    from policies.models import PolicyRule

    for slug in TEEN_SLUGS:
        make_policy(
            slug,
            (teen_safety / slug / "policy.md").read_text(),
            name=slug.replace("-", " ").title(),
        )
        version = Policy.objects.get(slug=slug).versions.published().order_by("-number").first()
        tiers = [
            r
            for r in PolicyRule.objects.filter(version=version).values_list("rule_id", flat=True)
            if "." in r and not r.split(".")[0].endswith("0")
        ]
        for n, (action, rule) in enumerate(
            zip(("remove", "restrict", "label"), tiers[::3], strict=False)
        ):
            case = flag(
                platform,
                policy=slug,
                external_id=f"{slug}-{n}",
                content_type=("text", "image", "video")[n],
            )
            decide(alice, case, outcome="violating", action=action, rule_ids=[rule])
    found = statements()
    assert len(found) == 18
    for statement in found:
        assert_valid_statement(statement, spec)
        assert statement["category"] == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    restricted = [s for s in found if s["puid"].endswith("-1")]
    assert {s["decision_visibility"][0] for s in restricted} == {
        "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED"
    }


def test_a_policys_own_mapping_wins_and_can_use_the_illegal_ground(
    spec, alice, platform, spam_policy
):
    Policy.objects.filter(slug="spam").update(
        dsa_mapping={
            "default": {
                "category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",
                "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
                "legal_ground": "Fraud Act 2006, s. 2",
                "reference_url": "https://example.org/terms#spam",
                "territorial_scope": ["IE", "NL"],
            },
            "rules": {
                "SP2": {
                    "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT",
                    "category": "STATEMENT_CATEGORY_OTHER_VIOLATION_TC",
                }
            },
        }
    )
    decide(
        alice,
        flag(platform, external_id="i-1"),
        outcome="violating",
        action="remove",
        rule_ids=["SP3.a"],
    )
    decide(
        alice,
        flag(platform, external_id="i-2"),
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
    )
    by_puid = {s["puid"]: s for s in statements()}
    for statement in by_puid.values():
        assert_valid_statement(statement, spec)
    illegal = by_puid["i-1"]
    assert illegal["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert illegal["illegal_content_legal_ground"] == "Fraud Act 2006, s. 2"
    assert illegal["source_type"] == "SOURCE_ARTICLE_16"
    assert illegal["territorial_scope"] == ["IE", "NL"]
    assert illegal["decision_ground_reference_url"] == "https://example.org/terms#spam"
    assert by_puid["i-2"]["decision_ground"] == "DECISION_GROUND_INCOMPATIBLE_CONTENT"


def test_mapping_problems_are_named():
    problems = dsa_mapping.mapping_problems(
        {
            "default": {
                "category": "STATEMENT_CATEGORY_SPAM",
                "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
                "category_specification": ["KEYWORD_SPAM"],
                "colour": "red",
                "visibility": {"restrict": "DECISION_VISIBILITY_OTHER", "hide": "x"},
            },
            "rules": {
                "SP2": {"incompatible_content_illegal": "maybe", "territorial_scope": ["US"]}
            },
            "extra": 1,
        }
    )
    text = "\n".join(problems)
    for expected in (
        "'STATEMENT_CATEGORY_SPAM' is not a STATEMENT_CATEGORIES key",
        "'KEYWORD_SPAM' is not KEYWORDS keys",
        "unknown key 'colour'",
        "needs a legal_ground",
        '\'maybe\' is not "Yes" or "No"',
        "'US' is not EEA country codes",
        "unknown key 'extra'",
        "'hide' is not an action",
        "visibility.restrict",
    ):
        assert expected in text, expected
    assert dsa_mapping.mapping_problems({}) == []
    with pytest.raises(ValidationError) as excinfo:
        dsa_mapping.validate_dsa_mapping({"default": {"category": "nope"}})
    assert "dsa_mapping" in excinfo.value.message_dict


def test_an_export_with_a_broken_mapping_is_refused_before_it_starts(
    alice, platform, spam_policy, tmp_path
):
    Policy.objects.filter(slug="spam").update(
        dsa_mapping={"default": {"category": "NOT_A_CATEGORY"}}
    )
    with pytest.raises(ValidationError):
        Export(fmt="dsa", filters=ExportFilters(), actor_label="test")
    with pytest.raises(CommandError, match="NOT_A_CATEGORY"):
        call_command("export_decisions", "--format", "dsa", "--output", str(tmp_path / "sor.jsonl"))
    assert not (tmp_path / "sor.jsonl").exists()


def test_command_writes_one_batch_per_line(spec, alice, platform, spam_policy, tmp_path):
    decide(
        alice,
        flag(platform, external_id="c-1"),
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
    )
    target = tmp_path / "sor.jsonl"
    call_command("export_decisions", "--format", "dsa", "--output", str(target))
    lines = target.read_text().splitlines()
    assert len(lines) == 1
    body = json.loads(lines[0])
    assert list(body) == ["statements"]
    assert_valid_statement(body["statements"][0], spec)


@pytest.mark.parametrize(
    ("external_id", "expected"),
    [
        ("abc-123_X", "abc-123_X"),
        ("a/b:c", None),
        ("x" * 501, None),
    ],
)
def test_puid_is_what_the_database_accepts(external_id, expected):
    puid = dsa.puid_for(external_id)
    assert re.fullmatch(r"[a-zA-Z0-9_-]+", puid) and len(puid) <= 500
    if expected:
        assert puid == expected
    assert dsa.puid_for(external_id) == puid
    assert dsa.puid_for("a/b:c") != dsa.puid_for("a_b_c")


def test_check_mappings_command(spam_policy, capsys):
    call_command("export_decisions", "--check-mappings")
    assert "valid" in capsys.readouterr().out
    Policy.objects.filter(slug="spam").update(dsa_mapping={"default": {"category": "NOPE"}})
    with pytest.raises(CommandError, match="policy 'spam': default.category: 'NOPE'"):
        call_command("export_decisions", "--check-mappings")
