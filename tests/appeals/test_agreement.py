"""Agreement on three levels: the comparison on its own, then decisions taken in the console.

Overriding the model's rule or its action is disagreement at that level, whatever the verdict.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from appeals.models import AuditEvent, Decision
from appeals.outcomes import Acceptance
from appeals.review import agreement
from tests.builders import appeal, decide, flag
from tests.reviewer.drafts import ready_draft

REPO_ROOT = Path(__file__).resolve().parents[2]
V, N = "violating", "not_violating"


@pytest.mark.parametrize(
    "model,person,overlap",
    [
        ([], [], None),  # nothing cited on either side: not compared
        (["a"], ["a"], 1.0),
        (["a"], [], 0.0),
        ([], ["a"], 0.0),
        (["a", "b"], ["b"], 0.5),
        (["a", "b"], ["b", "c"], 1 / 3),
        (["a", "a", "b"], ["b", "a"], 1.0),  # sets: repeats and order do not count
    ],
)
def test_rule_overlap_is_the_jaccard_index(model, person, overlap):
    got = agreement.rule_overlap(model, person)
    assert got == (None if overlap is None else pytest.approx(overlap))


def test_compare_takes_each_level_on_its_own():
    model = Acceptance(outcome=V, action="remove", rule_ids=["SP2.b"])
    assert agreement.compare(model, outcome=V, action="label", rule_ids=["SP3.a"]) == (
        agreement.Levels(verdict=True, rules_exact=False, rules_overlap=0.0, action=False)
    )
    assert agreement.compare(None, outcome=V, action="remove", rule_ids=["SP2.b"]) == (
        agreement.Levels()
    )


def _post_decision(client, case, **form):
    client.post(reverse("case_claim", args=[case.id]))
    case.refresh_from_db()
    response = client.post(
        reverse("case_decide", args=[case.id]), {"lease_token": case.lease_token, **form}
    )
    assert response.status_code in (200, 302), response.content[:500]
    return Decision.objects.get(case=case)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "action,rule_ids,levels",
    [
        # (verdict, rules exact, overlap, action, accepted)
        ("remove", ["SP2.b"], (True, True, 1.0, True, True)),
        ("label", ["SP3.a"], (True, False, 0.0, False, False)),  # the override
        ("remove", ["SP3.a"], (True, False, 0.0, True, False)),  # the rule alone
        ("restrict", ["SP2.b"], (True, True, 1.0, False, False)),  # the action alone
        ("remove", ["SP2.b", "SP3.a"], (True, False, 0.5, True, False)),  # one rule more
    ],
)
def test_an_override_posted_in_the_console_is_disagreement_at_its_level(
    client, alice, platform, spam_policy, action, rule_ids, levels
):
    case = flag(platform)
    ready_draft(case)  # violating, SP2.b: accepting it removes
    client.force_login(alice)
    decision = _post_decision(
        client,
        case,
        outcome=V,
        action=action,
        rule_ids=rule_ids,
        note="Not an ad: a fake giveaway.",
    )
    assert (
        decision.agrees_with_model,
        decision.rules_agree,
        decision.rules_overlap,
        decision.action_agrees,
        decision.accepted_recommendation,
    ) == levels
    assert decision.model_action == "remove"
    # The audit log records the levels with the decision.
    event = AuditEvent.objects.get(case=case, kind=AuditEvent.Kind.DECIDED)
    assert (
        event.data["agrees_with_model"],
        event.data["rules_agree"],
        event.data["action_agrees"],
    ) == (levels[0], levels[1], levels[3])
    # And the case page says which levels differ, not just "agrees with the model".
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    rules_word = "agree" if levels[1] else "differ"
    action_word = "agrees" if levels[3] else "differs"
    assert f"verdict agrees, rules {rules_word}, action {action_word}" in page


@pytest.mark.django_db
def test_an_appeal_compares_with_the_action_the_model_implies(alice, carol, platform, spam_policy):
    original = flag(platform)
    ready_draft(original)
    decide(alice, original, V, "remove", ["SP2.b"])
    case = appeal(platform, item_external_id=original.item.external_id)
    ready_draft(case, violation=False, rule_ids=["SP0.a"])  # not spam: grant the appeal
    decision = decide(carol, case, "overturn")
    # Overturning a removal restores the content: the action the model implied.
    assert (decision.model_outcome, decision.model_action) == ("overturn", "none")
    assert (decision.agrees_with_model, decision.action_agrees) == (True, True)
    assert (decision.rules_agree, decision.rules_overlap) == (False, 0.0)


@pytest.mark.django_db
def test_a_blind_call_is_compared_on_the_three_levels(alice, platform, spam_policy):
    case = flag(platform)
    ready_draft(case)
    decision = decide(alice, case, V, "remove", ["SP2.b"], blind_call=N)
    assert (decision.blind_agrees_with_model, decision.blind_action_agrees) == (False, False)
    # Blind "not violating" cites nothing; the model cited SP2.b: no rule in common.
    assert (decision.blind_rules_agree, decision.blind_rules_overlap) == (False, 0.0)
    assert (decision.agrees_with_model, decision.rules_agree, decision.action_agrees) == (
        True,
        True,
        True,
    )


@pytest.mark.django_db
def test_without_a_verdict_nothing_is_compared(alice, platform, spam_policy):
    case = flag(platform)  # the draft never came
    decision = decide(alice, case, V, "remove", ["SP2.b"])
    assert (
        decision.model_action,
        decision.agrees_with_model,
        decision.rules_agree,
        decision.rules_overlap,
        decision.action_agrees,
    ) == ("", None, None, None, None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fields",
    [
        {"rules_agree": True, "rules_overlap": 0.5},
        {"rules_agree": False, "rules_overlap": 1.0},
        {"rules_agree": None, "rules_overlap": 0.0},
        {"rules_agree": False, "rules_overlap": 1.5},
        {"blind_rules_agree": True, "blind_rules_overlap": None},
    ],
)
def test_the_database_refuses_an_exact_match_that_contradicts_the_overlap(
    alice, platform, spam_policy, fields
):
    case = flag(platform)
    ready_draft(case)
    decision = decide(alice, case, V, "remove", ["SP2.b"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Decision.objects.filter(id=decision.id).update(**fields)


MIGRATION_SCRIPT = r"""
import django
django.setup()
from django.core.management import call_command
from appeals.models import Decision
from appeals.review import queueing
from appeals.review.roles import bootstrap_roles
from tests.builders import decide, flag, make_platform, make_policy, make_user
from tests.reviewer.drafts import ready_draft

call_command("migrate", verbosity=0)
bootstrap_roles()
alice = make_user("alice", "reviewer")
platform = make_platform()
make_policy()
made = []
for action, rules in (("remove", ["SP2.b"]), ("label", ["SP3.a"]), ("remove", ["SP2.b", "SP3.a"])):
    case = flag(platform)
    ready_draft(case)
    made.append(decide(alice, case, "violating", action, rules).id)
undrafted = flag(platform)
made.append(decide(alice, undrafted, "violating", "remove", ["SP2.b"]).id)
# Back to before the levels were stored (the columns go), then forward: the data migration
# must fill them in for the decisions that already exist.
call_command("migrate", "appeals", "0010", verbosity=0)
call_command("migrate", verbosity=0)  # forward again, through 0011 and what follows it
for d in Decision.objects.filter(id__in=made).order_by("id"):
    print(d.model_action, d.agrees_with_model, d.rules_agree, d.rules_overlap, d.action_agrees)
# The quality page's queries on SQLite (the embedded default) too.
from reviewer import quality
r = quality.build_report()
o = r.overall
print(o.n, o.verdict.agreed, o.rules_n, o.rules_exact, o.action.agreed, round(o.rules_overlap_mean, 4),
      [g.label for g in r.by_rule], len(r.by_week), r.by_language, [g.label for g in r.by_policy_version])
"""


def test_the_migration_computes_the_levels_of_existing_decisions(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'appeals.sqlite3'}",
        "MIGRATION_DATABASE_URL": "",
        "DJANGO_SETTINGS_MODULE": "reviewer.settings",
        "CELERY_BROKER_URL": "memory://",
        "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run(
        [sys.executable, "-c", MIGRATION_SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-5:] == [
        "remove True True 1.0 True",
        "remove True False 0.0 False",
        "remove True False 0.5 True",
        " None None None None",
        "3 3 3 1 2 0.5 ['SP2.b'] 1 [] ['spam v1']",
    ]
