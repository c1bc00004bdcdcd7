"""Reading model output in every shape real servers return, and classifying every failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.safeguard import DraftStatus, FailureReason, parse_output, policy_spec
from tests.paths import DATASETS, shared_path
from tests.safeguard_fixtures import fixture_policy

TEEN = DATASETS / "teen-safety-policy-pack" / "example_policies"
SPAM = DATASETS / "spam-policy-example" / "policy.txt"
FIXTURE = fixture_policy()
ANSWER = json.dumps(
    {
        "violation": 1,
        "policy_category": "FX1.a",
        "rule_ids": ["FX1.a", "FX1.b"],
        "confidence": "high",
        "rationale": "Cold promotion.",
    }
)


def _harmony(analysis: str, final: str | None, *, end: str = "<|return|>") -> str:
    text = f"<|channel|>analysis<|message|>{analysis}<|end|>"
    if final is not None:
        text += f"<|start|>assistant<|channel|>final<|message|>{final}{end}"
    return text


def _policy_from(path: Path) -> object:
    return policy_spec(path.stem, shared_path(str(path.relative_to(DATASETS))).read_text())


def test_raw_harmony_splits_reasoning_from_the_json_answer() -> None:
    parsed = parse_output(_harmony("Promotion with a link.", ANSWER), policy=FIXTURE)

    assert parsed.status is DraftStatus.READY
    assert parsed.reasoning == "Promotion with a link."
    assert parsed.violation is True
    assert parsed.policy_category == "FX1.a"
    assert parsed.rule_ids == ("FX1.a", "FX1.b")
    assert parsed.confidence == "high"
    assert parsed.rationale == "Cold promotion."


def test_constrained_final_header_is_accepted() -> None:
    text = (
        "<|channel|>analysis<|message|>ok<|end|><|start|>assistant<|channel|>final <|constrain|>json<|message|>"
        + ANSWER
        + "<|return|>"
    )

    assert parse_output(text, policy=FIXTURE).violation is True


def test_vllm_reasoning_field_and_plain_content() -> None:
    parsed = parse_output(
        ANSWER, policy=FIXTURE, reasoning="Thinking it over.", finish_reason="stop"
    )

    assert parsed.reasoning == "Thinking it over."
    assert parsed.rule_ids == ("FX1.a", "FX1.b")


def test_transformers_serve_flattened_markers() -> None:
    parsed = parse_output(
        "analysisPromotional content.assistantfinal" + ANSWER, policy=FIXTURE, finish_reason="stop"
    )

    assert parsed.reasoning == "Promotional content."
    assert parsed.violation is True


@pytest.mark.parametrize(
    "final",
    [
        "```json\n" + ANSWER + "\n```",
        ANSWER + "\n\nLet me know if you need more.",
        "Here is my answer: " + ANSWER,
        ANSWER.replace('"high"', '"High"'),
    ],
)
def test_code_fences_and_surrounding_text_are_tolerated(final: str) -> None:
    assert parse_output(_harmony("x", final), policy=FIXTURE).rule_ids == ("FX1.a", "FX1.b")


def test_cited_ids_are_matched_case_insensitively_and_unknown_ones_are_kept_apart() -> None:
    answer = json.dumps({"violation": 1, "rule_ids": ["fx1.A", "FX9.z", "FX2"], "confidence": 0.9})

    parsed = parse_output(answer, policy=FIXTURE)

    assert parsed.rule_ids == ("FX1.a", "FX2")
    assert parsed.unknown_rule_ids == ("FX9.z",)
    assert parsed.confidence == "high"
    assert parsed.policy_category == "FX1.a"


def test_non_violation_has_no_category() -> None:
    parsed = parse_output(
        '{"violation": 0, "policy_category": "FX0.a", "rule_ids": ["FX0.a"]}', policy=FIXTURE
    )

    assert parsed.violation is False
    assert parsed.policy_category is None
    assert parsed.rule_ids == ("FX0.a",)


@pytest.mark.parametrize(
    ("final", "violation", "rules"),
    [
        ("INVALID", True, ()),
        ("VALID", False, ()),
        ("`GV1`", True, ("GV1",)),
        ("GV0", False, ("GV0",)),
        ("INVALID (GV1.a, GV1.f)", True, ("GV1.a", "GV1.f")),
        ('{"label": "GV2"}', True, ("GV2",)),
        ("Label: GV0.b — news without graphic detail", False, ("GV0.b",)),
    ],
)
def test_teen_safety_policy_labels_and_tier_codes(
    final: str, violation: bool, rules: tuple[str, ...]
) -> None:
    policy = _policy_from(TEEN / "graphic-violent-content" / "policy.md")

    parsed = parse_output(_harmony("r", final), policy=policy)  # type: ignore[arg-type]

    assert parsed.status is DraftStatus.READY
    assert parsed.violation is violation
    assert parsed.rule_ids == rules


def test_spam_policy_depiction_and_request_labels() -> None:
    policy = _policy_from(SPAM)

    parsed = parse_output("D-SP2, R-SP0", policy=policy)  # type: ignore[arg-type]
    assert (
        parsed.violation is True
        and parsed.rule_ids == ("SP2", "SP0")
        and parsed.policy_category == "SP2"
    )

    assert parse_output("D-SP0, R-SP0", policy=policy).violation is False  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "kwargs", "reason"),
    [
        ("", {}, FailureReason.EMPTY),
        ("   ", {"finish_reason": "stop"}, FailureReason.EMPTY),
        ("", {"finish_reason": "length"}, FailureReason.REASONING_EXHAUSTED),
        (
            "<|channel|>analysis<|message|>thinking and thinking",
            {},
            FailureReason.REASONING_EXHAUSTED,
        ),
        (
            "<|channel|>analysis<|message|>thinking<|end|>",
            {"finish_reason": "stop"},
            FailureReason.NO_FINAL_ANSWER,
        ),
        (
            "",
            {"reasoning": "long thoughts", "finish_reason": "length"},
            FailureReason.REASONING_EXHAUSTED,
        ),
        ("", {"reasoning": "thoughts", "finish_reason": "stop"}, FailureReason.NO_FINAL_ANSWER),
        (
            "analysisthinking about it",
            {"finish_reason": "length"},
            FailureReason.REASONING_EXHAUSTED,
        ),
        (_harmony("r", '{"violation": 1, "rule_ids": ["FX1', end=""), {}, FailureReason.TRUNCATED),
        ('{"viola', {"finish_reason": "length"}, FailureReason.TRUNCATED),
        (_harmony("r", "I cannot decide."), {}, FailureReason.UNPARSEABLE),
        ("Sure! Here's a poem.", {"finish_reason": "stop"}, FailureReason.UNPARSEABLE),
    ],
)
def test_every_failure_has_exactly_one_reason(
    text: str, kwargs: dict[str, str], reason: FailureReason
) -> None:
    parsed = parse_output(text, policy=FIXTURE, **kwargs)

    assert parsed.status is DraftStatus.FAILED
    assert parsed.failure_reason is reason
    assert parsed.failure_detail


def test_answer_on_the_commentary_channel_is_accepted_and_noted() -> None:
    text = (
        "<|channel|>analysis<|message|>r<|end|><|start|>assistant<|channel|>commentary<|message|>"
        + ANSWER
        + "<|call|>"
    )

    parsed = parse_output(text, policy=FIXTURE)

    assert parsed.violation is True
    assert parsed.notes == ("answer was on the commentary channel",)


_fragments = st.sampled_from(
    [
        "<|channel|>",
        "analysis",
        "final",
        "commentary",
        "<|message|>",
        "<|end|>",
        "<|start|>",
        "assistant",
        "<|return|>",
        "<|call|>",
        "<|constrain|>",
        "{",
        "}",
        "[",
        "]",
        '"violation"',
        ":",
        "1",
        "0",
        ",",
        '"rule_ids"',
        '"FX1.a"',
        "INVALID",
        "VALID",
        "GV1",
        "```",
        "json",
        "\n",
        " ",
        "assistantfinal",
        '"confidence"',
        "null",
        "true",
        '"',
        "\\",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    text=st.one_of(st.text(), st.lists(_fragments | st.text(max_size=5), max_size=40).map("".join)),
    reasoning=st.none() | st.text(max_size=20),
    finish_reason=st.sampled_from([None, "stop", "length", "tool_calls", ""]),
)
def test_no_exception_escapes_parse_output_and_results_are_consistent(
    text: str, reasoning: str | None, finish_reason: str | None
) -> None:
    parsed = parse_output(text, policy=FIXTURE, reasoning=reasoning, finish_reason=finish_reason)

    if parsed.status is DraftStatus.READY:
        assert parsed.failure_reason is None and isinstance(parsed.violation, bool)
        assert parsed.confidence in (None, "low", "medium", "high")
        assert set(parsed.rule_ids) <= {r.id for r in FIXTURE.rules} | {"FX0", "FX1", "FX2"}
        assert parsed.policy_category is None or parsed.violation
    else:
        assert parsed.failure_reason is not None and parsed.violation is None


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=True)
        | st.text(max_size=10),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_answers_never_raise(value: object) -> None:
    parse_output(json.dumps(value), policy=FIXTURE)
    parse_output(
        json.dumps(
            {"violation": value, "rule_ids": value, "confidence": value, "rationale": value}
        ),
        policy=FIXTURE,
    )
