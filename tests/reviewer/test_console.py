"""Every role lands somewhere useful, media honesty and the select-then-submit page parts
(issue 11.7, 11.8, 11.10), through the pages people use."""

from __future__ import annotations

import pytest
from django.utils.html import escape

from appeals.drafts import inputs
from appeals.models import AuditEvent, Decision
from appeals.review import queueing
from tests.builders import decide, flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db


# --- audit log ------------------------------------------------------------------------------


def test_the_audit_log_filters_by_case_actor_kind_source_and_time(
    client, platform, spam_policy, alice, erin
):
    one, two = flag(platform), flag(platform)
    decide(alice, one, "violating", "remove", ["SP2.b"])
    client.force_login(erin)
    page = client.get("/audit/").content.decode()
    assert f'href="/cases/{one.id}/"' in page and f'href="/cases/{two.id}/"' in page
    page = client.get(f"/audit/?case={two.id}").content.decode()
    assert f'href="/cases/{one.id}/"' not in page and "Received" in page
    page = client.get("/audit/?actor=alice&kind=decided").content.decode()
    assert page.count("<tr>") == 2  # the header and alice's one decision
    page = client.get("/audit/?source=worker").content.decode()
    assert "No events match." in page
    page = client.get("/audit/?since=2999-01-01T00:00").content.decode()
    assert "No events match." in page
    assert 'href="/exports/"' in page  # auditors may export


def test_bad_audit_filters_are_named_not_a_500(client, erin, platform, spam_policy):
    flag(platform)
    client.force_login(erin)
    response = client.get("/audit/?case=abc&kind=nope&actor=a%00b&since=yesterday")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Those filters were not applied." in page
    assert "Case: Enter a whole number." in page
    assert "Kind: Select a valid choice." in page
    assert "Actor: Null characters are not allowed." in page


def test_the_audit_log_shows_the_last_signed_checkpoint(client, erin, platform, spam_policy):
    from appeals.disclosure.checkpoints import write_checkpoint

    flag(platform)
    client.force_login(erin)
    assert "No signed checkpoint yet" in client.get("/audit/").content.decode()
    write_checkpoint()
    flag(platform)
    page = client.get("/audit/").content.decode()
    assert "Signed checkpoint verifies" in page
    assert "1 event since, not yet covered by a checkpoint" in page


# --- roles without queues -----------------------------------------------------------------


def test_auditors_and_policy_admins_land_on_their_pages_not_pick_a_queue(client, erin, dave):
    client.force_login(erin)
    page = client.get("/").content.decode()
    assert "Pick a queue" not in page
    assert 'href="/audit/"' in page and 'href="/exports/"' in page
    client.force_login(dave)
    page = client.get("/").content.decode()
    assert "Pick a queue" not in page and 'href="/policies/"' in page


def test_the_policies_page_lists_each_policy_and_its_versions(client, dave, spam_policy):
    client.force_login(dave)
    page = client.get("/policies/").content.decode()
    assert spam_policy.policy.name in page
    assert f'href="/policies/versions/{spam_policy.id}/"' in page
    assert spam_policy.label in page


def test_an_escalator_still_reads_the_case_they_escalated(client, platform, spam_policy, alice):
    case = flag(platform)
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    queueing.escalate_case(
        reviewer=alice, case_id=case.id, lease_token=claimed.lease_token, reason="not sure"
    )
    client.force_login(alice)
    response = client.get(f"/cases/{case.id}/")
    assert response.status_code == 200
    assert "You may read this case but not decide it." in response.content.decode()


def test_an_authors_appeal_in_the_history_is_readable_by_the_reviewer(
    client, platform, spam_policy, alice, carol
):
    from tests.builders import appeal

    decided = flag(platform, author_id="u-7")
    decide(carol, decided, "violating", "remove", ["SP2.b"])
    the_appeal = appeal(platform, item_external_id=decided.external_id)
    later = flag(platform, author_id="u-7")
    client.force_login(alice)
    page = client.get(f"/cases/{later.id}/").content.decode()
    assert f'href="/cases/{the_appeal.id}/"' in page
    assert client.get(f"/cases/{the_appeal.id}/").status_code == 200
    stranger = flag(platform, author_id="u-8")
    other_appeal = appeal(platform, item_external_id=stranger.external_id)
    assert (
        client.get(f"/cases/{other_appeal.id}/").status_code == 200
    )  # u-8 has a flag alice may work
    unrelated = appeal(platform, item_external_id=flag(platform).external_id)
    assert client.get(f"/cases/{unrelated.id}/").status_code == 403  # no author: no history


def test_next_while_holding_a_case_says_so(client, platform, spam_policy, alice):
    first, _second = flag(platform), flag(platform)
    client.force_login(alice)
    client.post("/queues/flags/next/")
    response = client.post("/queues/flags/next/", follow=True)
    assert response.redirect_chain[-1][0] == f"/cases/{first.id}/"
    assert f"You still hold case {first.id}" in response.content.decode()


def test_rule_chips_and_checkboxes_show_each_rules_text(client, platform, spam_policy, alice):
    case = flag(platform)
    ready_draft(case, rule_ids=("SP2.b",))
    queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    page = client.get(f"/cases/{case.id}/").content.decode()
    text = spam_policy.rules.get(rule_id="SP2.b").text
    assert f'title="{escape(text)}"' in page
    assert page.count('class="muted small rule-gloss"') >= 1 + spam_policy.rules.count()


# --- media honesty --------------------------------------------------------------------------


def _image_case(platform, **metadata):
    return flag(
        platform,
        content="(image post)",
        content_type="image",
        metadata=metadata,
    )


def test_what_the_model_saw_follows_the_items_metadata(platform, spam_policy):
    assert inputs.model_saw(flag(platform).item) == "text"
    assert inputs.model_saw(_image_case(platform, caption="Gold rings").item) == "caption"
    assert inputs.model_saw(_image_case(platform, transcript="Buy now").item) == "transcript"
    bare = flag(platform, content="https://cdn.example/p.png", content_type="image")
    assert inputs.model_saw(bare.item) == "address"
    spec = inputs.case_spec(_image_case(platform, caption="Gold rings", alt_text="A ring"))
    assert [(n.label, n.text) for n in spec.context] == [
        ("Caption", "Gold rings"),
        ("Alt text", "A ring"),
    ]


def test_a_media_draft_says_the_model_did_not_see_it_and_needs_a_second_step(
    client, platform, spam_policy, alice
):
    case = _image_case(platform, caption="Gold rings, 90% off", alt_text="Three rings")
    ready_draft(case, rule_ids=("SP2.b",))
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    page = client.get(f"/cases/{case.id}/").content.decode()
    assert "The model did not see this image." in page
    assert "Gold rings, 90% off" in page and "Three rings" in page  # the metadata is shown
    assert 'name="media_checked" value="1" required' in page
    accept = {
        "lease_token": str(claimed.lease_token),
        "outcome": "violating",
        "action": "remove",
        "rule_ids": ["SP2.b"],
        "via": "accept",
    }
    refused = client.post(f"/cases/{case.id}/decide/", accept)
    assert refused.status_code == 400
    assert "Tick that you looked at it yourself" in refused.content.decode()
    assert not Decision.objects.filter(case=case).exists()
    done = client.post(
        f"/cases/{case.id}/decide/", {**accept, "media_checked": "1", "then": "stay"}
    )
    assert done.status_code == 302 and done["Location"] == f"/cases/{case.id}/"
    assert Decision.objects.get(case=case).accepted_recommendation is True


def test_a_text_case_is_accepted_in_one_post_and_moves_on_by_default(
    client, platform, spam_policy, alice
):
    case, _other = flag(platform), flag(platform)
    ready_draft(case, rule_ids=("SP2.b",))
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    client.force_login(alice)
    page = client.get(f"/cases/{case.id}/").content.decode()
    assert "The model did not see" not in page and 'name="media_checked"' not in page
    response = client.post(
        f"/cases/{case.id}/decide/",
        {
            "lease_token": str(claimed.lease_token),
            "outcome": "violating",
            "action": "remove",
            "rule_ids": ["SP2.b"],
            "via": "accept",
            "then": "next",
        },
    )
    assert response.status_code == 302 and response["Location"] != f"/cases/{case.id}/"
    assert AuditEvent.objects.filter(case=case, kind="decided").exists()


def test_the_export_says_what_the_model_saw(client, platform, spam_policy, alice, erin):
    import csv
    import io

    from appeals.models import Recommendation

    case = _image_case(platform, caption="Gold rings")
    rec = ready_draft(case, rule_ids=("SP2.b",))
    Recommendation.objects.filter(id=rec.id).update(model_saw="caption")
    decide(alice, case, "violating", "remove", ["SP2.b"])
    client.force_login(erin)
    body = b"".join(client.get("/exports/decisions.csv").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert rows[0]["model_saw"] == "caption"
