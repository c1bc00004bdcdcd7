"""Golden sets in and out: bad lines named by number, nothing half-written, round trips."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from policies.workbench import golden
from policies.workbench.models import GoldenItem, GoldenSet

pytestmark = pytest.mark.django_db

GOOD_CSV = (
    "content,expected,rule_ids,language,must_pass,note\n"
    "Buy gold rings here!,violating,SP2.b,en,true,classic\n"
    '"Hi Sam, here is the report.",not_violating,,en,,\n'
)


def test_csv_import_creates_items_in_order(spam_policy, dave):
    s = golden.import_golden_set(
        policy=spam_policy.policy, name="core", data=GOOD_CSV, fmt="csv", actor=dave
    )
    items = list(s.items.all())
    assert [i.content for i in items] == ["Buy gold rings here!", "Hi Sam, here is the report."]
    assert items[0].expected_violation and items[0].expected_rule_ids == ["SP2.b"]
    assert items[0].must_pass and not items[1].must_pass
    assert not items[1].expected_violation and items[1].expected_rule_ids == []


def test_every_bad_csv_line_is_reported_by_number_and_nothing_is_written(spam_policy):
    data = (
        "content,expected,rule_ids\n"  # line 1
        "fine text,violating,SP2.b\n"  # 2
        ",violating,\n"  # 3: empty content
        "text,maybe,\n"  # 4: bad label
        '"multi\nline text",not_violating,SP2.b\n'  # 5-6: rules on a non-violating item
        "text,violating,not a rule!\n"  # 7
        "a,violating,SP2,extra\n"  # 8: too many values
    )
    with pytest.raises(golden.ImportError_) as caught:
        golden.import_golden_set(policy=spam_policy.policy, name="bad", data=data, fmt="csv")
    lines = [line for line, _ in caught.value.problems]
    assert lines == [3, 4, 6, 7, 8]
    messages = dict(caught.value.problems)
    assert "content is empty" in messages[3]
    assert "'maybe'" in messages[4]
    assert "expected not to violate" in messages[6]
    assert "'not'" in messages[7] or "not a rule" in messages[7]
    assert "more values" in messages[8]
    assert not GoldenSet.objects.exists() and not GoldenItem.objects.exists()


def test_every_bad_jsonl_line_is_reported_by_number(spam_policy):
    data = (
        '{"content": "ok", "expected": "violating", "rule_ids": ["SP2.b"]}\n'
        "\n"
        "{not json\n"
        '["a list"]\n'
        '{"content": "x", "expected": true, "language": "english"}\n'
        '{"content": "x", "expected": false, "colour": "red"}\n'
    )
    with pytest.raises(golden.ImportError_) as caught:
        golden.parse_items(data, fmt="jsonl")
    assert [line for line, _ in caught.value.problems] == [3, 4, 5, 6]
    assert "ISO 639-1" in dict(caught.value.problems)[5]
    assert "colour" in dict(caught.value.problems)[6]


def test_a_csv_without_a_content_column_is_refused_at_line_one():
    with pytest.raises(golden.ImportError_) as caught:
        golden.parse_items("text,label\nhello,1\n", fmt="csv")
    assert caught.value.problems[0][0] == 1


def test_export_then_import_gives_the_same_items(spam_policy):
    policy = spam_policy.policy
    s = golden.import_golden_set(policy=policy, name="core", data=GOOD_CSV, fmt="csv")
    for fmt in ("csv", "jsonl"):
        text = golden.export_golden_set(s, fmt=fmt)
        again = golden.import_golden_set(policy=policy, name=f"copy-{fmt}", data=text, fmt=fmt)
        fields = ("content", "expected_violation", "expected_rule_ids", "language", "must_pass")
        assert list(again.items.values_list(*fields)) == list(s.items.values_list(*fields))


def test_language_is_detected_when_not_given(spam_policy):
    data = (
        '{"content": "Kaufen Sie jetzt billiges Gold, nur heute im Angebot!", "expected": 1}\n'
        '{"content": "Buy cheap gold now, only today on offer!", "expected": 1}\n'
        '{"content": "ok", "expected": 0}\n'
    )
    s = golden.import_golden_set(policy=spam_policy.policy, name="langs", data=data, fmt="jsonl")
    assert list(s.items.values_list("language", flat=True)) == ["de", "en", ""]


def test_a_second_set_with_the_same_name_is_refused(spam_policy):
    golden.import_golden_set(policy=spam_policy.policy, name="core", data=GOOD_CSV, fmt="csv")
    with pytest.raises(ValidationError, match="already has a golden set"):
        golden.import_golden_set(policy=spam_policy.policy, name="core", data=GOOD_CSV, fmt="csv")


def test_one_gating_set_per_policy(spam_policy):
    policy = spam_policy.policy
    first = golden.import_golden_set(
        policy=policy, name="a", data=GOOD_CSV, fmt="csv", gates_publishing=True
    )
    second = golden.import_golden_set(
        policy=policy, name="b", data=GOOD_CSV, fmt="csv", gates_publishing=True
    )
    first.refresh_from_db()
    assert not first.gates_publishing and GoldenSet.objects.get(id=second.id).gates_publishing
    golden.make_gating_set(first)
    assert list(GoldenSet.objects.filter(gates_publishing=True)) == [first]
