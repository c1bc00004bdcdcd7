"""Second-opinion settings in the admin, posted as a browser would: a good setting is saved;
a bad one comes back with an error naming the problem, and nothing is saved."""

from __future__ import annotations

import json

import pytest

from appeals.models import AuditEvent
from policies.models import SecondOpinionSetting

pytestmark = pytest.mark.django_db

URL = "/admin/policies/secondopinionsetting/"


def _form(policy_id: int, **fields) -> dict:
    form = {
        "policy": str(policy_id),
        "adapter": "llama_guard_3",
        "base_url": "http://guard-host:8000/v1",
        "model": "meta-llama/Llama-Guard-3-8B",
        "api_key_env": "GUARD_API_KEY",
        "timeout_seconds": "20",
        "category_rules": json.dumps({"S2": ["SP2.b", "SP3.a"]}),
        "policy_text": "",
        "enabled": "on",
    }
    form.update(fields)
    return form


def test_a_policy_admin_adds_and_changes_a_second_opinion_model(client, dave, spam_policy):
    client.force_login(dave)
    assert client.get(f"{URL}add/").status_code == 200
    response = client.post(f"{URL}add/", _form(spam_policy.policy_id))
    assert response.status_code == 302, response.content.decode()[-3000:]
    setting = SecondOpinionSetting.objects.get()
    assert setting.category_rules == {"S2": ["SP2.b", "SP3.a"]}
    assert (setting.api_key_env, setting.timeout_seconds, setting.enabled) == (
        "GUARD_API_KEY",
        20,
        True,
    )
    page = client.get(f"{URL}{setting.id}/change/").content.decode()
    assert "Llama Guard 3 · meta-llama/Llama-Guard-3-8B" in page
    form = _form(spam_policy.policy_id)
    del form["enabled"]  # an unchecked box is not posted
    response = client.post(f"{URL}{setting.id}/change/", form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    setting.refresh_from_db()
    assert setting.enabled is False
    # Both saves are audit events of the policy, each field with its old and new value.
    prefix = f"second_opinion[{setting.id}]"
    added, changed = [
        event
        for event in AuditEvent.objects.filter(kind=AuditEvent.Kind.POLICY_CHANGED).order_by("id")
        if any(key.startswith(prefix) for key in event.data["changes"])
    ]
    assert added.data["changes"][f"{prefix}.model"] == {
        "from": None,
        "to": "meta-llama/Llama-Guard-3-8B",
    }
    assert changed.data["changes"] == {f"{prefix}.enabled": {"from": True, "to": False}}
    assert (changed.actor, changed.source) == (dave, AuditEvent.Source.ADMIN)
    # Switched off, never deleted: stored opinions name their setting.
    assert client.post(f"{URL}{setting.id}/delete/", {"post": "yes"}).status_code == 403
    assert SecondOpinionSetting.objects.filter(id=setting.id).exists()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"category_rules": json.dumps({"S99": ["SP2.b"]})},
            "&#x27;S99&#x27; is not a category of Llama Guard 3; its categories are S1, S2",
        ),
        (
            {"adapter": "qwen3guard", "category_rules": json.dumps({"S2": ["SP2.b"]})},
            "is not a category of Qwen3Guard; its categories are Violent, Non-violent Illegal Acts",
        ),
        ({"category_rules": json.dumps({"S2": ["SP9.z"]})}, "Not rules of spam v1: SP9.z."),
        ({"category_rules": json.dumps({"S2": "SP2.b"})}, "must map to a list of rule ids"),
        ({"category_rules": json.dumps(["S2"])}, "Give a JSON object of category"),
        ({"category_rules": "{S2: SP2.b"}, "Enter a valid JSON."),
        ({"api_key_env": "sk-live-4f9a8b7c6d5e"}, "not the key itself"),
        ({"base_url": "guard-host:8000/v1"}, "Give an http:// or https:// URL"),
        ({"timeout_seconds": "0"}, "greater than or equal to 1"),
        ({"policy_text": "# Policy"}, "Only CoPE reads a policy text"),
        ({"adapter": "perspective"}, "Select a valid choice"),
    ],
)
def test_a_bad_setting_is_a_form_error_naming_the_problem_and_nothing_is_saved(
    client, dave, spam_policy, fields, problem
):
    client.force_login(dave)
    response = client.post(f"{URL}add/", _form(spam_policy.policy_id, **fields))
    assert response.status_code == 200  # the form again, with the error
    assert problem in response.content.decode()
    assert not SecondOpinionSetting.objects.exists()


def test_shieldgemma_harms_and_copes_one_category_are_what_a_mapping_may_name(
    client, dave, spam_policy
):
    client.force_login(dave)
    ok = client.post(
        f"{URL}add/",
        _form(
            spam_policy.policy_id,
            adapter="shieldgemma",
            model="google/shieldgemma-2b",
            category_rules=json.dumps({"Dangerous Content": ["SP3.a"], "Harassment": []}),
        ),
    )
    assert ok.status_code == 302, ok.content.decode()[-3000:]
    cope = client.post(
        f"{URL}add/",
        _form(
            spam_policy.policy_id,
            adapter="cope",
            model="zentropi-ai/cope-a-9b",
            category_rules=json.dumps({"violating": ["SP2.b"]}),
            policy_text="# Policy\n## Overview\nSpam.",
        ),
    )
    assert cope.status_code == 302, cope.content.decode()[-3000:]
    assert SecondOpinionSetting.objects.count() == 2


def test_a_reviewer_may_not_configure_second_opinions(client, alice, spam_policy):
    client.force_login(alice)
    response = client.post(f"{URL}add/", _form(spam_policy.policy_id))
    assert response.status_code in (302, 403)
    assert not SecondOpinionSetting.objects.exists()
