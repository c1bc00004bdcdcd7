"""Rule extraction on the published policies the project ships with, and citation matching."""

import pytest

from policies.safeguard.rules import (
    extract_rules,
    is_allowed_rule,
    parent_id,
    resolve_rule_ids,
)
from policies.safeguard.types import Rule
from tests.paths import DATASETS, shared_path

TEEN = DATASETS / "teen-safety-policy-pack" / "example_policies"
SPAM = DATASETS / "spam-policy-example" / "policy.txt"

# Tier -> sub-rule letters each published policy defines (read off the policy files by hand).
EXPECTED = {
    "age-restricted-goods-and-services": {"ARS0": "abcd", "ARS1": "abcd", "ARS2": "abc"},
    "dangerous-content": {"DC0": "abcde", "DC1": "abcd", "DC2": "abcdef", "DC3": "abcde"},
    "dangerous-roleplay": {"DR0": "abc", "DR1": "abc", "DR2": "ab", "DR3": "abcde"},
    "graphic-sexual-content": {"GS0": "abcde", "GS1": "abcd", "GS2": "abcd"},
    "graphic-violent-content": {"GV0": "abcdef", "GV1": "abcdefg", "GV2": "abcd"},
    "harmful-body-ideals": {"HBI0": "abcdefg", "HBI1": "abcdef", "HBI2": "abcdefghi"},
}


def _expected_ids(tiers: dict[str, str]) -> list[str]:
    ids: list[str] = []
    for tier, letters in tiers.items():
        ids.append(tier)
        ids.extend(f"{tier}.{letter}" for letter in letters)
    return ids


@pytest.fixture(autouse=True)
def _datasets_present() -> None:
    shared_path("teen-safety-policy-pack", "example_policies")
    shared_path("spam-policy-example", "policy.txt")


@pytest.mark.parametrize("slug", sorted(EXPECTED))
def test_teen_safety_policy_yields_every_tier_and_sub_rule_in_order(slug: str) -> None:
    rules = extract_rules((TEEN / slug / "policy.md").read_text())

    assert [rule.id for rule in rules] == _expected_ids(EXPECTED[slug])


def test_graphic_violence_tier_text_is_its_section_and_sub_rule_text_is_its_line() -> None:
    rules = {
        rule.id: rule
        for rule in extract_rules((TEEN / "graphic-violent-content" / "policy.md").read_text())
    }

    tier = rules["GV1"].text
    assert tier.startswith("## Graphic Violence Depiction (GV1 - Graphic depiction")
    assert "GV1.g Violence involving minors" in tier
    assert tier.rstrip().endswith("Output: `INVALID`")
    assert "GV2" not in tier
    assert rules["GV1.a"].text.startswith("GV1.a Gore detail:")
    assert "\n" not in rules["GV1.a"].text


def test_spam_policy_yields_its_tiers_with_sub_rules_and_no_invented_sp1() -> None:
    rules = extract_rules(SPAM.read_text())

    assert [rule.id for rule in rules] == _expected_ids(
        {"SP0": "abcdefg", "SP2": "abc", "SP3": "abcd", "SP4": "abc"}
    )
    by_id = {rule.id: rule for rule in rules}
    assert by_id["SP4"].text.startswith("🚨 Malicious Spam (SP4 – Maximum Severity)")
    assert "LABEL FORMAT" not in by_id["SP4"].text
    assert by_id["SP2.b"].text == "SP2.b Irrelevant ads – “Buy gold rings here!”"


def test_policy_in_openai_recommended_shape_yields_bold_and_backticked_ids() -> None:
    text = (
        "# Hate (H)\n\n## H0 Allowed\nDiscussion of hate.\n- **H0.a** news\n\n"
        "## H2 Violates\n* **H2.d** slurs\n* H2.f dehumanising comparisons\n\n## Label format\n- `H9`: other\n"
    )

    assert [rule.id for rule in extract_rules(text)] == ["H0", "H0.a", "H2", "H2.d", "H2.f", "H9"]


def test_text_with_no_rule_codes_yields_no_rules() -> None:
    assert extract_rules("Flag anything rude.\nBe kind.") == ()
    assert extract_rules("") == ()


def test_cited_ids_match_case_insensitively_and_parents_of_defined_sub_rules_are_known() -> None:
    rules = (Rule("GV1.a", "a"), Rule("GV1.b", "b"), Rule("GV2", "tier"))

    known, unknown = resolve_rule_ids(["gv1.A", " `GV2` ", "GV1", "GV1.z", "XX9", "GV2"], rules)

    assert known == ("GV1.a", "GV2", "GV1")
    assert unknown == ("GV1.z", "XX9")


def test_tier_zero_is_allowed_and_sub_rules_know_their_parent() -> None:
    assert is_allowed_rule("GV0") and is_allowed_rule("sp0.c")
    assert not is_allowed_rule("GV1.a") and not is_allowed_rule("VALID")
    assert parent_id("GV1.a") == "GV1" and parent_id("GV1") is None
