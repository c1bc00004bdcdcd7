"""The policy admin: a policy admin edits a policy's appeal rules and DSA mapping; a broken
mapping is refused on save, with the problem named, not found later by an export."""

from __future__ import annotations

import pytest

from policies.models import Policy

pytestmark = pytest.mark.django_db

GOOD_MAPPING = (
    '{"default": {"category": "STATEMENT_CATEGORY_SCAMS_AND_FRAUD",'
    ' "decision_ground": "DECISION_GROUND_INCOMPATIBLE_CONTENT"}}'
)


def change(client, policy, **fields):
    form = {
        "slug": policy.slug,
        "name": policy.name,
        "reasoning_effort": policy.reasoning_effort,
        "appeal_window_days": policy.appeal_window_days,
        "decide_within_hours": policy.decide_within_hours,
        "appeal_decide_within_hours": policy.appeal_decide_within_hours,
        "dsa_mapping": "{}",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
        **fields,
    }
    return client.post(f"/admin/policies/policy/{policy.id}/change/", form)


def test_a_broken_dsa_mapping_is_refused_with_the_problem_named(client, dave, spam_policy):
    client.force_login(dave)
    policy = spam_policy.policy
    response = change(
        client,
        policy,
        dsa_mapping='{"default": {"category": "STATEMENT_CATEGORY_NOPE"}}',
        appeal_window_days=30,
    )
    assert response.status_code == 200  # the form again, with the errors
    text = response.content.decode()
    assert (
        "default.category: &#x27;STATEMENT_CATEGORY_NOPE&#x27; is not a STATEMENT_CATEGORIES key"
        in text
    )
    assert "no decision_ground" in text
    policy.refresh_from_db()
    assert policy.dsa_mapping == {}
    assert policy.appeal_window_days != 30  # nothing half-saved


def test_a_valid_mapping_and_appeal_rules_are_saved(client, dave, spam_policy):
    client.force_login(dave)
    policy = spam_policy.policy
    response = change(client, policy, dsa_mapping=GOOD_MAPPING, appeal_window_days=30)
    assert response.status_code == 302, response.content.decode()[-2000:]
    policy.refresh_from_db()
    assert policy.dsa_mapping["default"]["category"] == "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"
    assert policy.appeal_window_days == 30


def test_model_validation_names_the_mapping_field(spam_policy):
    from django.core.exceptions import ValidationError

    policy = Policy.objects.get(id=spam_policy.policy_id)
    policy.dsa_mapping = {"rules": {"SP2": {"decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT"}}}
    with pytest.raises(ValidationError) as excinfo:
        policy.full_clean()
    assert (
        "rules.SP2: the illegal-content ground needs a legal_ground"
        in excinfo.value.message_dict["dsa_mapping"]
    )
