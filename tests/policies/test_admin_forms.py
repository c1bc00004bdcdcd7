"""The admin's add and change forms, posted as a browser would, for every model a role may edit.

The list of (model, form) pairs a role may use is discovered from the roles and the admin's own
permission checks; a new permission that opens another form fails the coverage test until a test
posts that form here.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from appeals.review.roles import ROLES
from policies.models import Policy, PolicyRule, PolicyVersion
from tests import builders

pytestmark = pytest.mark.django_db

NEW_POLICY_TEXT = """# Harassment Policy (#HA)

## Targeted abuse (HA1)
HA1.a Insults aimed at a person - "you are worthless"
HA1.b Threats - "I know where you live"
"""

# Every (app_label.model, form) pair a test below posts.
POSTED = {
    ("policies.policy", "add"),
    ("policies.policy", "change"),
    ("policies.policyversion", "add"),
    ("policies.policyversion", "change"),
    # tests/policies/test_second_opinion_admin.py
    ("policies.secondopinionsetting", "add"),
    ("policies.secondopinionsetting", "change"),
}


def _editable_forms(user) -> set[tuple[str, str]]:
    request = RequestFactory().get("/admin/")
    request.user = user
    forms = set()
    for model, model_admin in admin.site._registry.items():
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        if model_admin.has_add_permission(request):
            forms.add((label, "add"))
        if model_admin.has_change_permission(request):
            forms.add((label, "change"))
    return forms


def test_every_admin_form_a_role_may_use_is_posted_by_a_test(roles):
    usable = set()
    for role in ROLES:
        user = builders.make_user(f"someone-{role}", role)
        if user.is_staff:  # only staff reach the admin site at all
            usable |= _editable_forms(user)
    assert usable, "no role may edit anything in the admin: the discovery is broken"
    assert usable <= POSTED, f"admin forms no test posts: {sorted(usable - POSTED)}"


def _add_version(client, **fields):
    form = {
        "slug": "harassment",
        "name": "Harassment",
        "text": NEW_POLICY_TEXT,
        "source": "written for the test",
        "licence_notice": "",
        # What the page used to carry (an empty rules inline); ignored now that it has none.
        "rules-TOTAL_FORMS": "0",
        "rules-INITIAL_FORMS": "0",
        **fields,
    }
    return client.post("/admin/policies/policyversion/add/", form)


def test_a_policy_admin_adds_a_version_through_the_admin_form(client, dave):
    client.force_login(dave)
    assert client.get("/admin/policies/policyversion/add/").status_code == 200
    response = _add_version(client)
    assert response.status_code == 302, response.content.decode()[-3000:]
    version = PolicyVersion.objects.get(policy__slug="harassment")
    # A draft: publishing is the workbench's, behind the evaluation gate (an audit event).
    assert (version.number, version.status) == (1, PolicyVersion.Status.DRAFT)
    assert version.created_by == dave
    assert list(version.rules.values_list("rule_id", flat=True)) == ["HA1", "HA1.a", "HA1.b"]
    listing = client.get(response["Location"])
    assert "was added successfully" in listing.content.decode()
    page = client.get(f"/admin/policies/policyversion/{version.id}/change/")
    assert page.status_code == 200
    assert "harassment v1" in page.content.decode()


def test_a_second_version_added_in_the_admin_is_numbered_after_the_first(client, dave, spam_policy):
    client.force_login(dave)
    response = _add_version(
        client, slug="spam", name="Spam", text=spam_policy.text + "\nSP4.a Chain letters\n"
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert list(
        PolicyVersion.objects.filter(policy__slug="spam").values_list("number", flat=True)
    ) == [2, 1]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("Be nice to each other. No spam.", "no rule ids found"),
        ("   ", "This field is required."),
    ],
)
def test_a_text_the_service_refuses_is_a_form_error_and_nothing_is_saved(
    client, dave, text, problem
):
    client.force_login(dave)
    response = _add_version(client, text=text)
    assert response.status_code == 200  # the form again, with the error on the text
    assert problem in response.content.decode()
    assert not Policy.objects.filter(slug="harassment").exists()
    assert not PolicyVersion.objects.exists()


def test_a_version_change_form_posted_back_changes_nothing(client, dave, spam_policy):
    client.force_login(dave)
    url = f"/admin/policies/policyversion/{spam_policy.id}/change/"
    assert client.get(url).status_code == 200
    rules = PolicyRule.objects.filter(version=spam_policy).count()
    form = {
        "rules-TOTAL_FORMS": str(rules),
        "rules-INITIAL_FORMS": str(rules),
        "rules-MIN_NUM_FORMS": "0",
        "rules-MAX_NUM_FORMS": "1000",
        "text": "edited",
    }
    for index, rule in enumerate(PolicyRule.objects.filter(version=spam_policy)):
        form[f"rules-{index}-id"] = str(rule.id)
        form[f"rules-{index}-version"] = str(spam_policy.id)
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    before = spam_policy.sha256
    spam_policy.refresh_from_db()
    assert spam_policy.sha256 == before and "edited" not in spam_policy.text


def test_the_admin_cannot_publish_around_the_workbench_gate(client, dave, spam_policy):
    draft = builders.import_policy_version(
        slug="spam", name="Spam", text=spam_policy.text + "\nSP5.a Link farms\n", publish=False
    )
    client.force_login(dave)
    client.post(
        "/admin/policies/policyversion/",
        {"action": "publish", "_selected_action": [str(draft.id)]},
    )
    draft.refresh_from_db()
    assert draft.status == PolicyVersion.Status.DRAFT


def test_a_policy_admin_adds_a_policy_through_the_admin_form(client, dave):
    client.force_login(dave)
    assert client.get("/admin/policies/policy/add/").status_code == 200
    response = client.post(
        "/admin/policies/policy/add/",
        {
            "slug": "scams",
            "name": "Scams",
            "reasoning_effort": "medium",
            "appeal_window_days": "14",
            "decide_within_hours": "24",
            "appeal_decide_within_hours": "72",
            "dsa_mapping": "{}",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
            "versions-MIN_NUM_FORMS": "0",
            "versions-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    assert Policy.objects.get(slug="scams").appeal_window_days == 14


def test_a_policy_admin_changes_a_policy_through_the_admin_form(client, dave, spam_policy):
    from tests.policies.test_policy_admin import change

    client.force_login(dave)
    policy = spam_policy.policy
    assert client.get(f"/admin/policies/policy/{policy.id}/change/").status_code == 200
    response = change(client, policy, decide_within_hours=12)
    assert response.status_code == 302, response.content.decode()[-3000:]
    policy.refresh_from_db()
    assert policy.decide_within_hours == 12
