"""Every second-opinion parser reads its model's published answer format, and fails on anything
else with a named reason, never another exception (property tests)."""

from __future__ import annotations

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from policies.second_opinion import (
    AnswerError,
    FailureReason,
    Verdict,
    cope,
    llama_guard,
    nemoguard,
    qwen3guard,
    shieldgemma,
)

PARSERS = {
    "llama_guard": llama_guard.parse,
    "shieldgemma": lambda text: shieldgemma.parse_one(text),
    "qwen3guard": qwen3guard.parse,
    "nemoguard": nemoguard.parse,
    "cope": cope.parse,
}
NAMED = set(FailureReason)
blank = st.sampled_from(["", " ", "\n", "  \n\t "])
pad = st.sampled_from(["", "\n", "\n\n", " "])


def some(names, *, min_size=1):
    return st.lists(st.sampled_from(sorted(names)), min_size=min_size, max_size=4, unique=True)


# --- Llama Guard 3/4: "safe" / "unsafe\nS1,S10" ------------------------------------------------


@given(lead=pad, trail=pad)
def test_llama_guard_safe(lead, trail):
    parsed = llama_guard.parse(f"{lead}safe{trail}")
    assert parsed.verdict is Verdict.NOT_VIOLATING and parsed.categories == ()


@given(codes=some(llama_guard.CATEGORIES), lead=pad, sep=st.sampled_from([",", ", "]))
def test_llama_guard_unsafe_names_its_categories(codes, lead, sep):
    parsed = llama_guard.parse(f"{lead}unsafe\n{sep.join(codes)}")
    assert parsed.verdict is Verdict.VIOLATING
    assert parsed.categories == tuple(codes)


@given(n=st.integers(min_value=15, max_value=999))
def test_llama_guard_category_beyond_s14_is_unknown(n):
    with pytest.raises(AnswerError) as error:
        llama_guard.parse(f"unsafe\nS1,S{n}")
    assert error.value.reason is FailureReason.UNKNOWN_CATEGORY


@pytest.mark.parametrize(
    "text",
    ["unsafe", "unsafe\n", "unsafe\nviolent crimes", "safe\nS1", "UNSAFE!\nS1", "unsafe\nS1\nS2"],
)
def test_llama_guard_malformed_answers_are_named(text):
    with pytest.raises(AnswerError) as error:
        llama_guard.parse(text)
    assert error.value.reason is FailureReason.MALFORMED_ANSWER


# --- ShieldGemma: Yes / No per harm -------------------------------------------------------------


@given(word=st.sampled_from(["Yes", "yes", "YES", "No", "no"]), rest=st.text(max_size=80), lead=pad)
def test_shieldgemma_reads_the_first_word(word, rest, lead):
    assume(not rest[:1].isalnum() and rest[:1] != "_")
    assert shieldgemma.parse_one(f"{lead}{word}{rest}") is (word.lower() == "yes")


@pytest.mark.parametrize("text", ["Yesterday", "Nope", "Maybe", "The answer is Yes", "1"])
def test_shieldgemma_malformed_answers_are_named(text):
    with pytest.raises(AnswerError) as error:
        shieldgemma.parse_one(text)
    assert error.value.reason is FailureReason.MALFORMED_ANSWER


def test_shieldgemma_violates_on_the_harms_answered_yes():
    adapter = shieldgemma.ShieldGemma()
    requests = adapter.requests("x", category_rules={}, policy_text="")
    assert [r.key for r in requests] == list(shieldgemma.HARMS)
    answers = [(r, "Yes" if r.key == "Harassment" else "No") for r in requests]
    parsed = adapter.parse(answers)
    assert parsed.verdict is Verdict.VIOLATING and parsed.categories == ("Harassment",)


# --- Qwen3Guard: "Safety: ...\nCategories: ..." -------------------------------------------------


@given(
    safety=st.sampled_from(["Safe", "Unsafe", "Controversial"]),
    names=some(qwen3guard.CATEGORIES),
    lead=pad,
)
def test_qwen3guard_reads_safety_and_categories(safety, names, lead):
    categories = "None" if safety == "Safe" else ", ".join(names)
    parsed = qwen3guard.parse(f"{lead}Safety: {safety}\nCategories: {categories}")
    assert parsed.verdict is qwen3guard.VERDICTS[safety.lower()]
    assert parsed.categories == (() if safety == "Safe" else tuple(names))


@given(name=st.text(min_size=1, max_size=30))
def test_qwen3guard_unknown_category_is_named(name):
    assume("," not in name and "\n" not in name and "\r" not in name and name.strip())
    assume(name.strip().lower() not in {c.lower() for c in qwen3guard.CATEGORIES} | {"none"})
    with pytest.raises(AnswerError) as error:
        qwen3guard.parse(f"Safety: Unsafe\nCategories: {name}")
    assert error.value.reason is FailureReason.UNKNOWN_CATEGORY


@pytest.mark.parametrize(
    "text",
    [
        "Unsafe",
        "Safety: Maybe\nCategories: None",
        "Safety: Unsafe",
        "Safety: Safe\nSafety: Unsafe\nCategories: Violent",
        "Safety: Unsafe\nCategories: Violent\nCategories: PII",
    ],
)
def test_qwen3guard_malformed_answers_are_named(text):
    with pytest.raises(AnswerError) as error:
        qwen3guard.parse(text)
    assert error.value.reason is FailureReason.MALFORMED_ANSWER


# --- NemoGuard: {"User Safety": ..., "Safety Categories": ...} ----------------------------------


@given(
    unsafe=st.booleans(), names=some(nemoguard.CATEGORIES), case=st.sampled_from([str, str.lower])
)
def test_nemoguard_reads_its_json(unsafe, names, case):
    answer = {"User Safety": case("unsafe" if unsafe else "safe")}
    if unsafe:
        answer["Safety Categories"] = ", ".join(case(n) for n in names)
    parsed = nemoguard.parse(json.dumps(answer))
    assert parsed.verdict is (Verdict.VIOLATING if unsafe else Verdict.NOT_VIOLATING)
    assert parsed.categories == (tuple(names) if unsafe else ())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"User Safety": "unsafe", "Safety Categories": "Spam"}', FailureReason.UNKNOWN_CATEGORY),
        ('{"User Safety": "maybe"}', FailureReason.MALFORMED_ANSWER),
        ('{"Response Safety": "safe"}', FailureReason.MALFORMED_ANSWER),
        ('["unsafe"]', FailureReason.MALFORMED_ANSWER),
        ("unsafe", FailureReason.MALFORMED_ANSWER),
        (
            '{"User Safety": "unsafe", "Safety Categories": ["Violence"]}',
            FailureReason.MALFORMED_ANSWER,
        ),
    ],
)
def test_nemoguard_bad_answers_are_named(text, reason):
    with pytest.raises(AnswerError) as error:
        nemoguard.parse(text)
    assert error.value.reason is reason


# --- CoPE: 0 / 1 ---------------------------------------------------------------------------------


@given(bit=st.sampled_from(["0", "1"]), lead=pad, trail=pad)
def test_cope_reads_its_bit(bit, lead, trail):
    parsed = cope.parse(f"{lead}{bit}{trail}")
    assert parsed.verdict is (Verdict.VIOLATING if bit == "1" else Verdict.NOT_VIOLATING)


# --- every parser, any text ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=50).map(lambda b: b.decode("latin-1")))
def test_any_text_parses_or_fails_with_a_named_reason(name, text):
    try:
        PARSERS[name](text)
    except AnswerError as error:
        assert error.reason in NAMED and error.detail
    # any other exception fails the test


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(text=blank)
def test_an_empty_answer_is_named_empty(name, text):
    with pytest.raises(AnswerError) as error:
        PARSERS[name](text)
    assert error.value.reason is FailureReason.EMPTY_ANSWER


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(text=st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=40))
def test_prose_is_not_a_verdict(name, text):
    assume(text.strip() and text.strip().split()[0] not in {"safe", "unsafe", "yes", "no"})
    with pytest.raises(AnswerError) as error:
        PARSERS[name](text)
    assert error.value.reason is FailureReason.MALFORMED_ANSWER
