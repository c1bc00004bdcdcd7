"""Second opinions on the case page (beside the draft; withheld on a blind-first queue until the
reviewer's own call, like the draft) and their agreement with the decision on the quality page."""

from __future__ import annotations

import pytest
from django.test import Client

from appeals.models import Queue, QueueSetting, SecondOpinion
from appeals.review import decisions, queueing
from appeals.second_opinions import services
from policies.models import SecondOpinionSetting
from tests.builders import appeal, decide, flag, make_user
from tests.reviewer.blind_drafts import land_draft
from tests.standin_server import StandInServer

pytestmark = pytest.mark.django_db

CONTENT = "You won an iPhone, click here to claim it"
SECRET_GUARD = "leakcheck/guard-model-9b"
# What a page would carry if a second opinion leaked.
TRACES = (SECRET_GUARD, "Llama Guard 3", "Non-Violent Crimes", "data-verdict", "unsafe")


def configure(policy_version, server, *, model=SECRET_GUARD, **fields):
    setting = SecondOpinionSetting(
        policy_id=policy_version.policy_id,
        adapter=fields.pop("adapter", "llama_guard_3"),
        base_url=server.base_url,
        model=model,
        timeout_seconds=5,
        category_rules=fields.pop("category_rules", {"S2": ["SP3.a"]}),
        **fields,
    )
    setting.full_clean()
    setting.save()
    return setting


def opinions_for(case, *settings):
    services.ask_second_opinions([(case.id, s.id) for s in settings], last_try=True)


def panel(html: str) -> str:
    start = html.index('id="second-opinions"')
    return html[start : html.index("</section>", start)]


def test_the_case_page_shows_each_opinion_beside_the_draft(platform, spam_policy, alice):
    with (
        StandInServer(mode="llama_guard") as guard,
        StandInServer(mode="qwen3guard", status=404) as broken,
    ):
        good = configure(spam_policy, guard)
        bad = configure(
            spam_policy,
            broken,
            adapter="qwen3guard",
            model="Qwen/Qwen3Guard-Gen-4B",
            category_rules={},
        )
        case = flag(platform, content=CONTENT)
        land_draft(case)
        opinions_for(case, good, bad)
    client = Client()
    client.force_login(alice)
    html = client.get(f"/cases/{case.id}/").content.decode()
    # Beside the draft: right after the recommendation panel, before the rule panel.
    assert (
        html.index('id="recommendation"')
        < html.index('id="second-opinions"')
        < html.index('id="rule-panel"')
    )
    shown = panel(html)
    assert "Llama Guard 3" in shown and SECRET_GUARD in shown
    assert 'data-verdict="violating"' in shown and "Violating" in shown
    assert "S2 Non-Violent Crimes" in shown
    assert f'href="/policies/versions/{case.policy_version_id}/rules/SP3.a/"' in shown
    # The failure, with its named reason and what the server said.
    assert 'data-failure="http_error"' in shown and "(http_error)" in shown
    assert "the model server refused the request" in shown and "HTTP 404" in shown
    assert "Waiting for" not in shown


def test_a_configured_model_that_has_not_answered_yet_is_waited_for(platform, spam_policy, alice):
    with StandInServer(mode="llama_guard") as guard:
        configure(spam_policy, guard)
    case = flag(platform, content=CONTENT)
    client = Client()
    client.force_login(alice)
    shown = panel(client.get(f"/cases/{case.id}/").content.decode())
    assert "Waiting for 1 model" in shown and 'hx-trigger="every 3s"' in shown


def test_a_policy_without_second_opinions_has_no_panel(platform, spam_policy, alice):
    case = flag(platform, content=CONTENT)
    client = Client()
    client.force_login(alice)
    assert 'id="second-opinions"' not in client.get(f"/cases/{case.id}/").content.decode()


def _assert_no_trace(html: str) -> None:
    for trace in TRACES:
        assert trace not in html, trace


def test_blind_first_withholds_second_opinions_until_the_reviewers_own_call(
    platform, spam_policy, alice
):
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    with StandInServer(mode="llama_guard") as guard:
        setting = configure(spam_policy, guard)
        case = flag(platform, content=CONTENT)
        land_draft(case)
        opinions_for(case, setting)
    assert SecondOpinion.objects.get(case=case).verdict == "violating"
    claimed = queueing.claim_case(reviewer=alice, case_id=case.id)
    client = Client()
    client.force_login(alice)
    url = f"/cases/{case.id}/"
    page = client.get(url).content.decode()
    _assert_no_trace(page)
    assert "Hidden until you record your own call" in panel(page)
    assert 'hx-trigger="every 3s"' not in panel(page)
    for target in ("recommendation", "case-media", "second-opinions"):
        fragment = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target)
        _assert_no_trace(fragment.content.decode())

    response = client.post(
        f"/cases/{case.id}/blind-call/",
        {"lease_token": str(claimed.lease_token), "outcome": "violating", "rule_ids": ["SP3.a"]},
    )
    assert response.status_code == 302
    shown = panel(client.get(url).content.decode())
    assert SECRET_GUARD in shown and "S2 Non-Violent Crimes" in shown


def test_another_case_of_the_same_item_withholds_its_second_opinions_too(
    platform, spam_policy, alice
):
    QueueSetting.objects.create(queue=Queue.APPEALS, blind_first=True)
    with StandInServer(mode="llama_guard") as guard:
        setting = configure(spam_policy, guard)
        case = flag(platform, external_id="prize-1", content=CONTENT)
        opinions_for(case, setting)
        land_draft(case)
        decide(alice, case, outcome="violating", action="remove", rule_ids=["SP3.a"])
        complaint = appeal(platform, item_external_id="prize-1", rule_ids=["SP3.a"])
        opinions_for(complaint, setting)
    senior = make_user("sam", "senior_reviewer")
    client = Client()
    client.force_login(senior)
    _assert_no_trace(client.get(f"/cases/{case.id}/").content.decode())
    _assert_no_trace(client.get(f"/cases/{complaint.id}/").content.decode())
    claimed = queueing.claim_case(reviewer=senior, case_id=complaint.id)
    decisions.record_blind_call(
        reviewer=senior, case_id=complaint.id, lease_token=claimed.lease_token, outcome="uphold"
    )
    assert SECRET_GUARD in client.get(f"/cases/{case.id}/").content.decode()


def test_the_quality_page_shows_agreement_per_second_opinion_model(
    platform, spam_policy, alice, erin
):
    with StandInServer(mode="llama_guard") as guard, StandInServer(mode="cope") as cope:
        lg = configure(spam_policy, guard, model="meta-llama/Llama-Guard-3-8B")
        cp = configure(
            spam_policy, cope, adapter="cope", model="zentropi-ai/cope-a-9b", category_rules={}
        )
        agreed = flag(platform, content="You won an iPhone, click here")  # both: violating
        missed = flag(platform, content="Buy gold rings here!")  # llama: S2; cope: violating
        benign = flag(platform, content="Hi Sam, here is the report.")
        for case in (agreed, missed, benign):
            opinions_for(case, lg, cp)
    decide(alice, agreed, outcome="violating", action="remove", rule_ids=["SP3.a"])
    decide(alice, missed, outcome="not_violating", action="none")
    decide(alice, benign, outcome="not_violating", action="none")
    client = Client()
    client.force_login(erin)
    html = client.get("/quality/").content.decode()
    start = html.index('id="second-opinion-agreement"')
    block = html[start : html.index("</section>", start)]
    llama = block[block.index('data-second-opinion="meta-llama/Llama-Guard-3-8B"') :]
    llama = llama[: llama.index("</tr>")]
    # Llama Guard: violating, violating (S2 → SP3.a), safe; the decisions: v, not, not → 2 of 3.
    assert "<td>3</td>" in llama and 'data-level="verdict">66.7%' in llama
    # Its rules were compared on the two violating answers; SP3.a is the first decision's only.
    assert 'data-level="rules-exact">50.0%' in llama
    cope_row = block[block.index('data-second-opinion="zentropi-ai/cope-a-9b"') :]
    assert "<td>3</td>" in cope_row[: cope_row.index("</tr>")]
