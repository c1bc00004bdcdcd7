"""The workbench's pages through Django's test client: who may see them, import, edit, publish."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from policies.models import PolicyVersion
from policies.workbench import golden, versions
from policies.workbench.models import GoldenSet
from tests.builders import POLICY_TEXT

pytestmark = pytest.mark.django_db

SET = "content,expected,rule_ids,must_pass\nBuy gold rings here!,violating,SP2.b,true\nhello,not_violating,,\n"


def test_the_workbench_is_for_policy_admins_only(client, alice, dave, spam_policy):
    client.force_login(alice)
    assert client.get(reverse("workbench")).status_code == 403
    assert client.get(reverse("workbench_version", args=[spam_policy.id])).status_code == 403
    client.force_login(dave)
    page = client.get(reverse("workbench"))
    assert page.status_code == 200 and b"Import a golden set" in page.content


def test_importing_a_file_with_bad_lines_names_them(client, dave, spam_policy):
    client.force_login(dave)
    bad = SimpleUploadedFile("set.csv", b"content,expected\nok,violating\n,violating\nx,perhaps\n")
    response = client.post(
        reverse("workbench_import"),
        {"policy": spam_policy.policy_id, "name": "core", "file": bad},
        follow=True,
    )
    assert b"line 3: content is empty" in response.content
    assert b"line 4: expected must be" in response.content
    assert not GoldenSet.objects.exists()
    good = SimpleUploadedFile("set.csv", SET.encode())
    response = client.post(
        reverse("workbench_import"),
        {"policy": spam_policy.policy_id, "name": "core", "file": good, "gates_publishing": "on"},
        follow=True,
    )
    assert b"Imported 2 items." in response.content
    s = GoldenSet.objects.get()
    assert s.gates_publishing
    export = client.get(reverse("workbench_set_export", args=[s.id, "csv"]))
    assert export.content.decode().startswith("content,expected,rule_ids")


def test_a_draft_is_edited_diffed_and_checked_and_a_published_version_is_not(
    client, dave, spam_policy
):
    client.force_login(dave)
    response = client.post(reverse("workbench_new_draft", args=[spam_policy.id]))
    draft = PolicyVersion.objects.get(number=2)
    assert response["Location"] == reverse("workbench_version", args=[draft.id])
    client.post(
        reverse("workbench_save", args=[draft.id]),
        {"text": POLICY_TEXT + "\nSP3.b Phishing - fake login pages.\n"},
    )
    page = client.get(reverse("workbench_version", args=[draft.id])).content.decode()
    assert "+SP3.b Phishing - fake login pages." in page
    assert "SP3.b</code>" in page and ">added<" in page
    assert "tokens; the guidance is 400–600" in page
    assert "no finished run on the golden set" not in page  # no gating set yet
    assert "has no golden set marked to gate publishing" in page

    response = client.post(
        reverse("workbench_save", args=[spam_policy.id]), {"text": "SP9 changed"}, follow=True
    )
    assert b"is published and can&#x27;t be edited" in response.content
    spam_policy.refresh_from_db()
    assert "SP9" not in spam_policy.text


def test_publishing_without_a_run_is_refused_and_says_so(client, dave, spam_policy):
    golden.import_golden_set(
        policy=spam_policy.policy, name="core", data=SET, fmt="csv", gates_publishing=True
    )
    draft = versions.create_draft(policy=spam_policy.policy, text=POLICY_TEXT + "\n", actor=dave)
    client.force_login(dave)
    response = client.post(reverse("workbench_publish", args=[draft.id]), follow=True)
    assert b"has no finished run on the golden set" in response.content
    draft.refresh_from_db()
    assert draft.status == "draft"


def test_a_run_export_makes_formula_text_inert(client, dave, spam_policy):
    from policies.workbench import runs
    from policies.workbench.models import EvaluationResult

    s = golden.import_golden_set(
        policy=spam_policy.policy,
        name="core",
        data="content,expected\n=HYPERLINK(1),0\n",
        fmt="csv",
    )
    run = runs.create_run(version=spam_policy, golden_set=s)
    EvaluationResult.objects.create(run=run, item=s.items.get(), ready=True, violation=False)
    client.force_login(dave)
    csv_body = client.get(reverse("workbench_run_export", args=[run.id, "csv"])).content.decode()
    assert "'=HYPERLINK(1)" in csv_body
    jsonl = client.get(reverse("workbench_run_export", args=[run.id, "jsonl"])).content.decode()
    assert '"content": "=HYPERLINK(1)"' in jsonl


def test_a_decided_case_page_offers_add_to_golden_set_to_a_senior_policy_admin(
    client, carol, dave, alice, platform, spam_policy
):
    from tests.builders import decide, flag

    s = golden.import_golden_set(policy=spam_policy.policy, name="core", data=SET, fmt="csv")
    case = flag(platform, content="Buy gold rings here, cheap!")
    decide(alice, case, outcome="violating", action="remove", rule_ids=["SP2.b"])
    carol.groups.add(*dave.groups.all())
    client.force_login(carol)
    page = client.get(reverse("case_detail", args=[case.id])).content.decode()
    assert "Add to golden set “core”" in page
    response = client.post(
        reverse("workbench_set_add", args=[s.id]), {"what": "case", "case_id": case.id}, follow=True
    )
    assert b"Added 1 item." in response.content
    assert s.items.get(source_case_id=case.id).expected_rule_ids == ["SP2.b"]
    client.force_login(alice)  # a reviewer sees no such button
    assert (
        "Add to golden set"
        not in client.get(reverse("case_detail", args=[case.id])).content.decode()
    )


def test_replay_runs_the_version_on_recent_decided_cases(
    client, dave, alice, platform, spam_policy
):
    from policies.workbench.models import EvaluationRun
    from tests.builders import decide, flag

    client.force_login(dave)
    response = client.post(reverse("workbench_replay", args=[spam_policy.id]), {"cases": "5"})
    assert response["Location"] == reverse("workbench_version", args=[spam_policy.id])
    for content in ("Buy gold rings here!", "hello"):
        decide(alice, flag(platform, content=content), outcome="not_violating", action="none")
    response = client.post(reverse("workbench_replay", args=[spam_policy.id]), {"cases": "5"})
    run = EvaluationRun.objects.get()
    assert response["Location"] == reverse("workbench_run", args=[run.id])
    assert run.item_count == 2 and run.golden_set.kind == "replay"
