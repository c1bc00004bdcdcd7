"""Agreement on three levels over a fixed day of casework, checked against a hand computation.

Ten decisions on the spam policy (rules SP0.a … SP3.a). The model's side is what its Accept
button would decide; "—" is "not compared". Worked out by hand:

  #   who    model (verdict, rules)   decided (outcome, action, rules)   verdict rules(overlap) action
  1   alice  violating  [SP2.b]        violating remove [SP2.b]            ✓   ✓ (1)      ✓
  2   alice  violating  [SP2.b]        violating label  [SP3.a]            ✓   ✗ (0)      ✗  (the issue's override)
  3   alice  violating  [SP2.b]        violating remove [SP2.b SP3.a]      ✓   ✗ (1/2)    ✓
  4   bob    violating  [SP2.a SP2.b]  violating restrict [SP2.b]          ✓   ✗ (1/2)    ✗
  5   bob    violating  [SP2.b]        not_violating none []               ✗   ✗ (0)      ✗
  6   bob    not_viol.  []             not_violating none []               ✓   —          ✓
  7   bob    not_viol.  [SP0.a]        not_violating none [SP0.a]          ✓   ✓ (1)      ✓
  8   alice  not_viol.  []             violating remove [SP3.a]            ✗   ✗ (0)      ✗  (blind call: violating [SP3.a])
  9   alice  (no draft)                violating remove [SP2.b]            not counted
  10  carol  appeal of #1; the model says violating [SP2.b] → uphold, keep "remove";
             carol overturns: action none, no rules                        ✗   ✗ (0)      ✗

Overall (9 with a verdict): verdict 6/9 = 66.7%, κ = 20/47 = 0.43; rules compared on 8, exact
2/8 = 25.0%, mean overlap 3/8 = 0.375; action 4/9 = 44.4%, κ = 6/51 = 0.12.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from appeals.models import Decision, Queue, QueueSetting
from appeals.review import queueing
from appeals.review.decisions import decide_case, record_blind_call
from reviewer import quality
from tests.builders import appeal, decide, flag
from tests.reviewer.drafts import ready_draft

V, N = "violating", "not_violating"

# decision number → (agrees_with_model, rules_agree, rules_overlap, action_agrees, model_action)
EXPECTED = {
    1: (True, True, 1.0, True, "remove"),
    2: (True, False, 0.0, False, "remove"),
    3: (True, False, 0.5, True, "remove"),
    4: (True, False, 0.5, False, "remove"),
    5: (False, False, 0.0, False, "remove"),
    6: (True, None, None, True, "none"),
    7: (True, True, 1.0, True, "none"),
    8: (False, False, 0.0, False, "none"),
    9: (None, None, None, None, ""),
    10: (False, False, 0.0, False, "remove"),
}


def _case(platform, *, violation, rule_ids, **fields):
    case = flag(platform, **fields)
    ready_draft(case, violation=violation, rule_ids=rule_ids)
    return case


@pytest.fixture
def day(alice, bob, carol, platform, spam_policy):
    """The ten decisions above, numbered; #1–#4 a week earlier than the rest."""
    d = {}
    c1 = _case(platform, violation=True, rule_ids=["SP2.b"], metadata={"language": "en"})
    d[1] = decide(alice, c1, V, "remove", ["SP2.b"])
    c2 = _case(platform, violation=True, rule_ids=["SP2.b"], metadata={"language": "en"})
    d[2] = decide(alice, c2, V, "label", ["SP3.a"], note="A fake giveaway, not an ad: label it.")
    c3 = _case(platform, violation=True, rule_ids=["SP2.b"])
    d[3] = decide(alice, c3, V, "remove", ["SP2.b", "SP3.a"])
    c4 = _case(platform, violation=True, rule_ids=["SP2.a", "SP2.b"])
    d[4] = decide(bob, c4, V, "restrict", ["SP2.b"])
    c5 = _case(platform, violation=True, rule_ids=["SP2.b"], metadata={"language": "de"})
    d[5] = decide(bob, c5, N, "none")
    c6 = _case(platform, violation=False, rule_ids=[])
    d[6] = decide(bob, c6, N, "none")
    c7 = _case(platform, violation=False, rule_ids=["SP0.a"])
    d[7] = decide(bob, c7, N, "none", ["SP0.a"])
    c9 = flag(platform)  # the draft never came
    d[9] = decide(alice, c9, V, "remove", ["SP2.b"])
    c10 = appeal(platform, item_external_id=c1.item.external_id, rule_ids=["SP2.b"])
    ready_draft(c10, violation=True, rule_ids=["SP2.b"])
    d[10] = decide(carol, c10, "overturn")
    # Last, as the flags queue turns blind-first: alice calls it blind, then decides.
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    c8 = _case(platform, violation=False, rule_ids=[])
    claimed = queueing.claim_case(reviewer=alice, case_id=c8.id)
    token = claimed.lease_token
    record_blind_call(
        reviewer=alice, case_id=c8.id, lease_token=token, outcome=V, rule_ids=["SP3.a"]
    )
    d[8] = decide_case(
        reviewer=alice,
        case_id=c8.id,
        lease_token=token,
        outcome=V,
        action="remove",
        rule_ids=["SP3.a"],
    )
    earlier = timezone.now() - dt.timedelta(days=7)
    Decision.objects.filter(id__in=[d[i].id for i in (1, 2, 3, 4)]).update(decided_at=earlier)
    return d


def _week(moment) -> str:
    day = timezone.localtime(moment).date()
    return (day - dt.timedelta(days=day.weekday())).isoformat()


@pytest.mark.django_db
def test_each_decision_stores_the_hand_computed_levels(day):
    for number, decision in day.items():
        decision.refresh_from_db()
        stored = (
            decision.agrees_with_model,
            decision.rules_agree,
            decision.rules_overlap,
            decision.action_agrees,
            decision.model_action,
        )
        assert stored == EXPECTED[number], number
    # "Accepted the recommendation" is agreeing on every level compared: #1, #6 and #7 (#8's
    # draft was shown only after the blind call, and differed anyway); #2 agreed on the verdict
    # alone and is not "accepted".
    assert [n for n, d in day.items() if d.accepted_recommendation] == [1, 6, 7]
    blind = day[8]
    assert (
        blind.blind_outcome,
        blind.blind_agrees_with_model,
        blind.blind_rules_agree,
        blind.blind_rules_overlap,
        blind.blind_action_agrees,
    ) == (V, False, False, 0.0, False)


@pytest.mark.django_db
def test_the_report_matches_the_hand_computation(day):
    report = quality.build_report()
    o = report.overall
    assert (o.verdict.n, o.verdict.agreed) == (9, 6)
    assert o.verdict.kappa == pytest.approx(20 / 47)
    assert (o.rules_n, o.rules_exact, o.rules_overlap_mean) == (8, 2, pytest.approx(0.375))
    assert (o.action.n, o.action.agreed) == (9, 4)
    assert o.action.kappa == pytest.approx(6 / 51)

    reviewers = {g.label: g for g in report.by_reviewer}
    alice, bob, carol = reviewers["alice"], reviewers["bob"], reviewers["carol"]
    assert (alice.n, alice.verdict.agreed, alice.rules_n, alice.rules_exact) == (4, 3, 4, 1)
    assert (alice.rules_overlap_mean, alice.action.agreed) == (pytest.approx(0.375), 2)
    assert (bob.n, bob.verdict.agreed, bob.rules_n, bob.rules_exact) == (4, 3, 3, 1)
    assert (bob.rules_overlap_mean, bob.action.agreed) == (pytest.approx(0.5), 2)
    assert (carol.n, carol.verdict.agreed, carol.rules_exact, carol.action.agreed) == (1, 0, 0, 0)

    rules = {g.label: g for g in report.by_rule}
    assert set(rules) == {"SP2.b", "SP2.a", "SP0.a"}
    sp2b = rules["SP2.b"]  # #1, #2, #3, #4, #5, #10
    assert (sp2b.n, sp2b.verdict.agreed, sp2b.rules_exact, sp2b.action.agreed) == (6, 4, 1, 2)

    assert [g.label for g in report.by_policy_version] == ["spam v1"]
    assert [g.label for g in report.by_model] == ["openai/gpt-oss-safeguard-20b"]

    languages = {g.label: g for g in report.by_language}
    # The appeal (#10) is about #1's item, so it is in English too.
    en = languages["en"]
    assert (en.n, en.verdict.agreed, en.rules_n, en.rules_exact, en.action.agreed) == (
        3,
        2,
        3,
        1,
        1,
    )
    assert (languages["de"].n, languages["de"].verdict.agreed) == (1, 0)
    assert languages["(not known)"].n == 5

    weeks = report.by_week
    assert [g.label for g in weeks] == [
        _week(timezone.now() - dt.timedelta(days=7)),
        _week(timezone.now()),
    ]
    older, newer = weeks
    assert (older.n, older.verdict.agreed, older.rules_n, older.rules_exact) == (4, 4, 4, 1)
    assert older.action.agreed == 2
    assert (newer.n, newer.verdict.agreed, newer.rules_n, newer.rules_exact) == (5, 2, 4, 1)
    assert newer.action.agreed == 2

    blind, after, shown = report.totals.calls
    assert (blind.n, blind.verdict, blind.rules_n, blind.rules_exact, blind.action) == (
        1,
        0,
        1,
        0,
        0,
    )
    assert (after.n, after.verdict, after.rules_exact, after.action) == (1, 0, 0, 0)
    assert (shown.n, shown.verdict, shown.rules_n, shown.rules_exact, shown.action) == (
        8,
        6,
        7,
        2,
        4,
    )


def _cells(page: str, section: str, group: str) -> dict[str, str]:
    """The level cells of one group's row in one section of the page."""
    block = page.split(f'id="{section}"', 1)[1].split("</section>", 1)[0]
    row = block.split(f'data-group="{group}"', 1)[1].split("</tr>", 1)[0]
    return dict(re.findall(r'data-level="([\w-]+)">([^<]*)<', row))


@pytest.mark.django_db
def test_the_quality_page_shows_the_three_levels_by_each_grouping(client, erin, day):
    client.force_login(erin)
    page = client.get(reverse("quality")).content.decode()
    assert "Jaccard" in page and "|M ∩ R| / |M ∪ R|" in page
    level = page.split('id="level-verdict"', 1)[1]
    assert "66.7%" in level.split("</article>")[0] and "κ 0.43" in level.split("</article>")[0]
    rules = page.split('id="level-rules"', 1)[1].split("</article>")[0]
    assert "25.0%" in rules and "2 of 8" in rules and "mean overlap 0.38" in rules
    action = page.split('id="level-action"', 1)[1].split("</article>")[0]
    assert "44.4%" in action and "κ 0.12" in action

    expected = {"verdict": "66.7%", "rules-exact": "25.0%", "rules-overlap": "0.38"}
    assert _cells(page, "by-policy-version", "spam v1") == {**expected, "action": "44.4%"}
    assert _cells(page, "by-reviewer", "alice") == {
        "verdict": "75.0%",
        "rules-exact": "25.0%",
        "rules-overlap": "0.38",
        "action": "50.0%",
    }
    assert _cells(page, "by-reviewer", "bob") == {
        "verdict": "75.0%",
        "rules-exact": "33.3%",
        "rules-overlap": "0.50",
        "action": "50.0%",
    }
    assert _cells(page, "by-rule", "SP2.b") == {
        "verdict": "66.7%",
        "rules-exact": "16.7%",
        "rules-overlap": "0.33",
        "action": "33.3%",
    }
    assert _cells(page, "by-language", "de")["verdict"] == "0.0%"
    assert _cells(page, "by-week", _week(timezone.now())) == {
        "verdict": "40.0%",
        "rules-exact": "25.0%",
        "rules-overlap": "0.25",
        "action": "40.0%",
    }
    blind = page.split('id="blind-table"', 1)[1].split("</table>")[0]
    assert re.search(
        r"Draft shown from the start</th><td>8</td><td>75.0%</td><td>28.6%</td>", blind
    )


def _export(client, fmt: str) -> list[dict]:
    response = client.get(f"/exports/decisions.{fmt}")
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _flag(value):
    return "" if value is None else ("true" if value else "false")


@pytest.mark.django_db
def test_the_exports_carry_the_three_levels_as_computed_by_hand(client, erin, day):
    client.force_login(erin)
    by_id = {decision.id: number for number, decision in day.items()}
    for fmt in ("csv", "jsonl"):
        rows = _export(client, fmt)
        assert len(rows) == 10
        for row in rows:
            number = by_id[int(row["decision_id"])]
            agrees, rules_agree, overlap, action_agrees, model_action = EXPECTED[number]
            got = (
                row["agrees_with_model"],
                row["rules_agree"],
                row["rules_overlap"],
                row["action_agrees"],
                row["model_action"],
            )
            if fmt == "csv":
                want = (
                    _flag(agrees),
                    _flag(rules_agree),
                    "" if overlap is None else str(overlap),
                    _flag(action_agrees),
                    model_action,
                )
            else:
                want = (agrees, rules_agree, overlap, action_agrees, model_action or "")
            assert got == want, (fmt, number)
        # The same totals as the page, recomputed from the export alone.
        if fmt == "jsonl":
            counted = [r for r in rows if r["agrees_with_model"] is not None]
            compared = [r for r in counted if r["rules_agree"] is not None]
            assert (len(counted), sum(r["agrees_with_model"] for r in counted)) == (9, 6)
            assert (len(compared), sum(r["rules_agree"] for r in compared)) == (8, 2)
            assert sum(r["rules_overlap"] for r in compared) / len(compared) == 0.375
            assert sum(r["action_agrees"] for r in counted) == 4
            blind = [r for r in rows if r["blind_outcome"]]
            assert [
                (
                    r["blind_outcome"],
                    r["blind_agrees_with_model"],
                    r["blind_rules_agree"],
                    r["blind_rules_overlap"],
                    r["blind_action_agrees"],
                )
                for r in blind
            ] == [(V, False, False, 0.0, False)]


@pytest.mark.django_db
def test_the_page_costs_the_same_queries_however_many_decisions(client, erin, alice, platform, day):
    client.force_login(erin)
    with CaptureQueriesContext(connection) as report_queries:
        quality.build_report()
    assert len(report_queries) == 9
    with CaptureQueriesContext(connection) as before:
        assert client.get(reverse("quality")).status_code == 200
    for language in ("fr", "es", "it", "fr", "nl"):
        case = _case(platform, violation=True, rule_ids=["SP2.a"], metadata={"language": language})
        decide(alice, case, V, "label", ["SP2.b"], blind_call=V, blind_rule_ids=["SP2.a"])
    with CaptureQueriesContext(connection) as after:
        page = client.get(reverse("quality")).content.decode()
    assert len(after) == len(before)
    assert _cells(page, "by-language", "fr")["verdict"] == "100.0%"
