"""Every URL × every role: who gets in, who is refused, and nobody gets a 500.

anon is not logged in; mallory has no role; alice is a reviewer; carol a senior reviewer; dave a
policy admin; erin an auditor. POSTs to a case without the lease answer 400 (the request is
refused by the service, not the permission check) for those allowed to work the queue.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from appeals.models import Case, CaseGroup, GroupMember
from policies.workbench import golden, runs
from tests.builders import appeal, flag

pytestmark = pytest.mark.django_db

ROLES = ("anon", "mallory", "alice", "carol", "dave", "erin")
LOGIN = 302  # to the login page


# name: (method, {role: status}) — statuses in ROLES order.
MATRIX: dict[str, tuple[str, tuple[int, ...]]] = {
    "login": ("GET", (200, 200, 200, 200, 200, 200)),
    "logout": ("POST", (302, 302, 302, 302, 302, 302)),
    "dashboard": ("GET", (LOGIN, 200, 200, 200, 200, 200)),
    "search": ("GET", (LOGIN, 403, 200, 200, 403, 200)),
    "preferences": ("GET", (LOGIN, 200, 200, 200, 200, 200)),  # one's own display preferences
    "queue_list:flags": ("GET", (LOGIN, 403, 200, 200, 403, 200)),
    "queue_list:appeals": ("GET", (LOGIN, 403, 403, 200, 403, 200)),
    "queue_list:escalations": ("GET", (LOGIN, 403, 403, 200, 403, 200)),
    "start_reviewing": ("POST", (LOGIN, 403, 302, 302, 403, 403)),
    "case_detail": ("GET", (LOGIN, 403, 200, 200, 403, 200)),
    "case_detail:appeal": ("GET", (LOGIN, 403, 403, 200, 403, 200)),
    # The world's case is text: no media, so those who may read the case get 404, after the
    # permission check (tests/reviewer/test_case_media.py covers stored media).
    "case_media_preview": ("GET", (LOGIN, 403, 404, 404, 403, 404)),
    "case_media_original": ("GET", (LOGIN, 403, 404, 404, 403, 404)),
    "case_claim": ("POST", (LOGIN, 403, 302, 302, 403, 403)),
    "case_claim:appeal": ("POST", (LOGIN, 403, 403, 302, 403, 403)),
    "case_decide": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    "case_blind_call": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    "case_escalate": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    "case_skip": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    "case_release": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    # Only the lease holder or a senior may ask again (alice holds no lease here).
    "case_retry_draft": ("POST", (LOGIN, 403, 403, 302, 403, 403)),
    "queue_requeue_drafts": ("POST", (LOGIN, 403, 403, 302, 403, 403)),
    "case_renew_lease": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    # A near-duplicate group in the flags queue; POSTs without a lease or reason are refused by
    # the service (a message and a redirect, or 400) after the permission check.
    "group_detail": ("GET", (LOGIN, 403, 200, 200, 403, 200)),
    "group_claim": ("POST", (LOGIN, 403, 302, 302, 403, 403)),
    "group_confirm": ("POST", (LOGIN, 403, 302, 302, 403, 403)),
    "group_release": ("POST", (LOGIN, 403, 302, 302, 403, 403)),
    "group_renew_lease": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    "group_decide": ("POST", (LOGIN, 403, 400, 400, 403, 403)),
    "group_remove_member": ("POST", (LOGIN, 403, 302, 302, 403, 403)),
    "policy_version": ("GET", (LOGIN, 403, 200, 200, 200, 200)),
    "policy_rule": ("GET", (LOGIN, 403, 200, 200, 200, 200)),
    "quality": ("GET", (LOGIN, 403, 403, 200, 403, 200)),
    "audit_log": ("GET", (LOGIN, 403, 403, 200, 403, 200)),
    "policies": ("GET", (LOGIN, 403, 200, 200, 200, 200)),
    "export": ("GET", (LOGIN, 403, 403, 403, 403, 200)),
    "export_csv": ("GET", (LOGIN, 403, 403, 403, 403, 200)),
    "export_jsonl": ("GET", (LOGIN, 403, 403, 403, 403, 200)),
    "export_dsa": ("GET", (LOGIN, 403, 403, 403, 403, 200)),
    # Seniors only; the world has no callback to retry, so carol gets 404 after the check
    # (tests/appeals/test_outbox.py retries real ones).
    "retry_callback": ("POST", (LOGIN, 403, 403, 404, 403, 403)),
    "admin": ("GET", (LOGIN, LOGIN, LOGIN, LOGIN, 200, LOGIN)),
    "workbench": ("GET", (LOGIN, 403, 403, 403, 200, 403)),
    "workbench_import": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_set": ("GET", (LOGIN, 403, 403, 403, 200, 403)),
    "workbench_set_add": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_set_gate": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_set_export": ("GET", (LOGIN, 403, 403, 403, 200, 403)),
    "workbench_version": ("GET", (LOGIN, 403, 403, 403, 200, 403)),
    "workbench_new_draft": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_save": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_start_run": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_publish": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_replay": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_run": ("GET", (LOGIN, 403, 403, 403, 200, 403)),
    "workbench_cancel": ("POST", (LOGIN, 403, 403, 403, 302, 403)),
    "workbench_run_export": ("GET", (LOGIN, 403, 403, 403, 200, 403)),
    "workbench_compare": ("GET", (LOGIN, 403, 403, 403, 200, 403)),
    # The API authenticates with bearer tokens, not sessions: a logged-in user without one is refused.
    "api:post_item": ("POST", (401, 401, 401, 401, 401, 401)),
    "api:post_items_bulk": ("POST", (401, 401, 401, 401, 401, 401)),
    "api:post_appeal": ("POST", (401, 401, 401, 401, 401, 401)),
    "api:post_item_upload": ("POST", (401, 401, 401, 401, 401, 401)),
    "api:get_case": ("GET", (401, 401, 401, 401, 401, 401)),
    "api:openapi-json": ("GET", (200, 200, 200, 200, 200, 200)),
    "api:openapi-view": ("GET", (200, 200, 200, 200, 200, 200)),
}

# URL names that are not endpoints of their own (same path as another entry, or catch-alls).
NOT_ENDPOINTS = {
    "api:items_other_methods",
    "api:items_bulk_other_methods",
    "api:items_upload_other_methods",
    "api:appeals_other_methods",
    "api:case_other_methods",
    "api:unknown_path",
    "api:api-root",
}


def _named_urls(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                yield "admin"
                continue
            ns = pattern.namespace or ""
            yield from _named_urls(pattern.url_patterns, f"{namespace}{ns}:" if ns else namespace)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}"


def test_the_matrix_covers_every_url():
    names = set(_named_urls(get_resolver().url_patterns)) - NOT_ENDPOINTS
    covered = {key.split(":")[0] if not key.startswith("api:") else key for key in MATRIX}
    assert names - covered == set(), "add these URLs to the authorization matrix"


@pytest.fixture
def world(platform, spam_policy, alice, bob, carol, dave, erin, mallory):
    case = flag(platform)
    decided = flag(platform)
    appeal_case = appeal(platform, item_external_id=decided.external_id)
    golden_set = golden.import_golden_set(
        policy=spam_policy.policy, name="core", data="content,expected\nhi,0\n", fmt="csv"
    )
    run = runs.create_run(version=spam_policy, golden_set=golden_set)
    near_duplicates = [flag(platform), flag(platform)]
    group = CaseGroup.objects.create(
        queue="flags", kind="flag", policy_version=spam_policy, basis="text"
    )
    for member in near_duplicates:
        GroupMember.objects.create(group=group, case=member, similarity=1.0)
    return {
        "group": group,
        "users": {
            "anon": None,
            "mallory": mallory,
            "alice": alice,
            "carol": carol,
            "dave": dave,
            "erin": erin,
        },
        "case": case,
        "appeal": appeal_case,
        "version": spam_policy,
        "golden_set": golden_set,
        "run": run,
    }


def _url(key: str, world) -> str:
    name, _, variant = key.partition(":")
    if name in ("api", "appeals"):
        name, variant = key, ""
    case = world["appeal"] if variant == "appeal" else world["case"]
    if name.startswith("queue_list"):
        return reverse("queue_list", args=[variant])
    if name in ("start_reviewing", "queue_requeue_drafts"):
        return reverse(name, args=["flags"])
    if name == "group_remove_member":
        return reverse(name, args=[world["group"].id, world["group"].members.first().case_id])
    if name.startswith("group_"):
        return reverse(name, args=[world["group"].id])
    if name.startswith("case_"):
        return reverse(name, args=[case.id])
    if name == "policy_version":
        return reverse(name, args=[world["version"].id])
    if name == "policy_rule":
        return reverse(name, args=[world["version"].id, "SP2.a"])
    if name == "api:get_case":
        return reverse(name, kwargs={"case_id": case.id})
    if name == "retry_callback":
        return reverse(name, args=[2**31 - 1])
    if name == "admin":
        return "/admin/"
    if name in ("workbench_set", "workbench_set_add", "workbench_set_gate"):
        return reverse(name, args=[world["golden_set"].id])
    if name == "workbench_set_export":
        return reverse(name, args=[world["golden_set"].id, "csv"])
    if name.startswith(("workbench_version", "workbench_new_draft", "workbench_save")) or name in (
        "workbench_start_run",
        "workbench_publish",
        "workbench_replay",
    ):
        return reverse(name, args=[world["version"].id])
    if name in ("workbench_run", "workbench_cancel"):
        return reverse(name, args=[world["run"].id])
    if name == "workbench_run_export":
        return reverse(name, args=[world["run"].id, "csv"])
    if name == "workbench_compare":
        return reverse(name) + f"?a={world['run'].id}&b={world['run'].id}"
    return reverse(name)


def _reset(case: Case) -> None:
    Case.objects.filter(id=case.id).update(
        claimed_by=None, lease_token=None, lease_expires_at=None, claimed_at=None
    )


@pytest.mark.parametrize("key", sorted(MATRIX))
def test_each_role_gets_what_its_permissions_allow(client, world, key):
    method, expected = MATRIX[key]
    url = _url(key, world)
    got = []
    for role in ROLES:
        client.logout()
        user = world["users"][role]
        if user is not None:
            client.force_login(user)
        response = client.post(url, {}) if method == "POST" else client.get(url)
        got.append(response.status_code)
        if response.status_code == 302 and expected[ROLES.index(role)] == LOGIN and role == "anon":
            assert (
                "/accounts/login/" in response["Location"]
                or "/admin/login/" in response["Location"]
            )
        _reset(world["case"])
        _reset(world["appeal"])
    assert dict(zip(ROLES, got, strict=True)) == dict(zip(ROLES, expected, strict=True))
