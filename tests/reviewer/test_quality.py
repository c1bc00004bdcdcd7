"""Agreement and quality: the arithmetic on its own, then the page over real casework."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appeals.models import Queue, QueueSetting
from appeals.review import queueing
from appeals.review.decisions import decide_case, record_blind_call
from reviewer import quality
from tests.builders import appeal, decide, flag
from tests.reviewer.drafts import ready_draft

V, N = "violating", "not_violating"


def test_kappa_is_one_for_perfect_agreement_on_two_labels():
    assert quality.cohen_kappa({(V, V): 5, (N, N): 5}) == pytest.approx(1.0)


def test_kappa_is_zero_when_agreement_is_what_chance_gives():
    assert quality.cohen_kappa({(V, V): 25, (V, N): 25, (N, V): 25, (N, N): 25}) == pytest.approx(
        0.0
    )


def test_kappa_matches_a_worked_example():
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: po = .7, pe = .5 → κ = .4
    assert quality.cohen_kappa({(V, V): 20, (V, N): 5, (N, V): 10, (N, N): 15}) == pytest.approx(
        0.4
    )


def test_kappa_is_undefined_without_decisions_or_variety():
    assert quality.cohen_kappa({}) is None
    assert quality.cohen_kappa({(V, V): 7}) is None


def test_group_agreement_adds_up_each_group():
    rows = [("alice", V, V, 3), ("alice", V, N, 1), ("bob", N, N, 2)]
    groups = {g.label: g for g in quality.group_agreement(rows)}
    assert (groups["alice"].n, groups["alice"].agreed, groups["alice"].rate) == (4, 3, 0.75)
    assert groups["bob"].rate == 1.0


def test_confusion_matrix_keeps_only_labels_that_occur():
    matrix = quality.confusion_matrix({(V, V): 3, (V, N): 1})
    assert [label for label, _ in matrix["labels"]] == [V, N]
    assert matrix["rows"] == [("Violating", [3, 1]), ("Not violating", [0, 0])]


@pytest.mark.django_db
def test_report_over_casework(alice, bob, carol, platform, spam_policy):
    agree, differ, blind = flag(platform), flag(platform), flag(platform)
    for case in (agree, differ, blind):
        ready_draft(case)  # the model says violating, SP2.b
    decide(alice, agree, V, "remove", ["SP2.b"])
    decide(bob, differ, N, "none")
    original = flag(platform)
    decide(alice, original, V, "remove", ["SP2.b"])
    # From here on the flags queue is blind-first: a decision needs the reviewer's call first.
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    claimed = queueing.claim_case(reviewer=alice, case_id=blind.id)
    record_blind_call(reviewer=alice, case_id=blind.id, lease_token=claimed.lease_token, outcome=N)
    decide_case(
        reviewer=alice,
        case_id=blind.id,
        lease_token=claimed.lease_token,
        outcome=V,
        action="remove",
        rule_ids=["SP2.b"],
    )
    overturned = appeal(platform, item_external_id=original.external_id)
    decide(carol, overturned, "overturn")

    with CaptureQueriesContext(connection) as ctx:
        report = quality.build_report()
    assert len(ctx.captured_queries) <= 10
    assert (report.overall.n, report.overall.verdict.agreed) == (3, 2)
    reviewers = {row.label: row for row in report.by_reviewer}
    assert reviewers["alice"].verdict.rate == 1.0 and reviewers["bob"].verdict.rate == 0.0
    assert [row.label for row in report.by_rule] == ["SP2.b"]
    assert [row.label for row in report.by_policy_version] == ["spam v1"]
    assert report.totals.overturned == 1 and report.totals.overturn_rate == 1.0
    assert (
        report.totals.blind_n,
        report.totals.blind_agreed,
        report.totals.blind_after_reveal_agreed,
    ) == (1, 0, 1)
    assert (report.totals.shown_n, report.totals.shown_agreed) == (2, 1)
    assert report.median_time_to_decision is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    "persona,status", [("carol", 200), ("erin", 200), ("alice", 403), ("mallory", 403)]
)
def test_quality_page_is_for_senior_reviewers_and_auditors(client, request, persona, status):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("quality")).status_code == status


@pytest.mark.django_db
def test_quality_page_renders_charts_with_tables(client, alice, erin, platform, spam_policy):
    case = flag(platform)
    ready_draft(case)
    decide(alice, case, V, "remove", ["SP2.b"])
    client.force_login(erin)
    page = client.get(reverse("quality")).content.decode()
    assert "<svg" in page and "Cohen" in page and "Confusion matrix" in page
    assert "100.0%" in page


@pytest.mark.django_db
def test_the_detected_language_groups_the_quality_page_before_the_platform_s(
    alice, platform, spam_policy
):
    from appeals.models import Item

    detected = flag(platform, content="Achetez de l'or ici", metadata={"language": "en"})
    sent_only = flag(platform, content="Buy gold here", metadata={"language": "en"})
    unknown = flag(platform, content="...")
    Item.objects.filter(id=detected.item_id).update(language="fr")
    for case in (detected, sent_only, unknown):
        ready_draft(case)
        decide(alice, case, "violating", "remove", ["SP2.b"])

    groups = {g.label: g.n for g in quality.by_language()}

    assert groups == {"fr": 1, "en": 1, "(not known)": 1}
