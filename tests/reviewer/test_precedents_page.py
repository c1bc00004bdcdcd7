"""The case page's precedents panel over HTTP: the five most similar decided cases the viewer
may read (never the case itself, never an open case), read against the draft where it is shown;
nothing of the draft before a blind-first reviewer's own call; what each role may read."""

from __future__ import annotations

import re

import pytest

from appeals.models import QueueSetting
from appeals.precedents import index as precedent_index
from appeals.precedents import services as precedents
from appeals.review import queueing
from tests.builders import decide, flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

RINGS = "Buy gold rings here! Cheap gold rings and necklaces, free shipping today only"
RINGS_AGAIN = "Cheap gold rings and silver necklaces for sale, buy here with free shipping"
PHOTO = "How do I upload a photo of my cat to my profile page?"
GIVEAWAY = "You won an iPhone! Click here to claim your prize before midnight"


@pytest.fixture(autouse=True)
def index_dir(settings, tmp_path):
    settings.PRECEDENTS_INDEX_DIR = str(tmp_path / "precedents")
    precedent_index.forget()
    yield
    precedent_index.forget()


def embedded(platform, content, **fields):
    case = flag(platform, content=content, **fields)
    precedents.embed_items([case.item_id])
    return case


def panel(client, user, case) -> str:
    client.force_login(user)
    response = client.get(f"/cases/{case.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    match = re.search(r'<section id="precedents".*?</section>', html, re.S)
    assert match, "no precedents panel on the page"
    return match.group(0)


def shown_cases(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li data-case="(\d+)"', html)]


def test_the_panel_lists_similar_decided_cases_and_reads_the_draft_against_them(
    client, platform, spam_policy, alice, bob
):
    rings = embedded(platform, RINGS, author_id="a1")
    giveaway = embedded(platform, GIVEAWAY, author_id="a2")
    photo = embedded(platform, PHOTO, author_id="a3")
    still_open = embedded(platform, RINGS + " and bracelets", author_id="a4")
    decide(bob, rings, "violating", "remove", ["SP2.b"])
    decide(bob, giveaway, "violating", "remove", ["SP3.a"])
    decide(bob, photo, "not_violating")
    case = embedded(platform, RINGS_AGAIN, author_id="a5")
    ready_draft(case, violation=False, rule_ids=("SP0.a",))

    html = panel(client, alice, case)
    ids = shown_cases(html)
    assert ids[0] == rings.id and set(ids) == {rings.id, giveaway.id, photo.id}
    assert case.id not in ids and still_open.id not in ids
    assert f'href="/cases/{rings.id}/"' in html
    assert "% similar" in html and "<code>SP2.b</code>" in html and "Violating" in html
    # The draft says "not violating"; two of the three were removed: the panel says so.
    comparison = re.search(r'id="precedents-vs-draft".*?</p>', html, re.S).group(0)
    assert "not violating" in comparison and "1 of these 3 went the same way" in comparison
    assert "most went the other way" in comparison
    assert "<code>SP0.a</code> cited in 0" in comparison
    assert "<code>SP2.b</code> (1)" in comparison and "<code>SP3.a</code> (1)" in comparison
    assert "unlike the draft" in html


def test_a_blind_first_reviewer_sees_decisions_but_nothing_of_the_draft_before_their_call(
    client, platform, spam_policy, alice, bob
):
    QueueSetting.objects.create(queue="flags", blind_first=True)
    rings = embedded(platform, RINGS, author_id="a1")
    decide(
        bob,
        rings,
        "violating",
        "remove",
        ["SP2.b"],
        blind_call="violating",
        blind_rule_ids=["SP2.b"],
    )
    case = embedded(platform, RINGS_AGAIN, author_id="a2")
    ready_draft(case, violation=True, rule_ids=("SP2.b",))

    html = panel(client, alice, case)
    assert shown_cases(html) == [rings.id]  # people's decisions on other items are shown
    assert "precedents-vs-draft" not in html
    assert "the draft" not in html and "the model" not in html


def test_each_viewer_sees_only_cases_they_may_read(
    client, platform, spam_policy, alice, bob, carol
):
    escalated = embedded(platform, RINGS, author_id="a1")
    claimed = queueing.claim_case(reviewer=bob, case_id=escalated.id)
    queueing.escalate_case(
        reviewer=bob, case_id=escalated.id, lease_token=claimed.lease_token, reason="unsure"
    )
    decide(carol, escalated, "violating", "remove", ["SP2.b"])
    photo = embedded(platform, PHOTO, author_id="a3")
    decide(bob, photo, "not_violating")
    case = embedded(platform, RINGS_AGAIN, author_id="a2")

    # The escalated case is in a queue Alice does not review, by an author none of her cases
    # has: she may not read it, so it is not among her precedents. Carol (a senior) and Bob (who
    # escalated it) may.
    assert shown_cases(panel(client, alice, case)) == [photo.id]
    assert shown_cases(panel(client, carol, case)) == [escalated.id, photo.id]
    assert shown_cases(panel(client, bob, case)) == [escalated.id, photo.id]
    client.force_login(alice)
    assert client.get(f"/cases/{escalated.id}/").status_code == 403


def test_a_case_not_embedded_yet_polls_until_it_is(client, platform, spam_policy, alice):
    case = flag(platform, content=RINGS)
    html = panel(client, alice, case)
    assert "Not compared yet" in html and 'hx-trigger="every 3s"' in html
    precedents.embed_items([case.item_id])
    html = panel(client, alice, case)
    assert "hx-trigger" not in html and "No decided case you may read is similar yet" in html


def test_a_failure_in_the_panel_never_takes_the_case_page_down(
    client, platform, spam_policy, alice, monkeypatch
):
    case = embedded(platform, RINGS)

    def broken(*args, **kwargs):
        raise RuntimeError("index exploded")

    monkeypatch.setattr("reviewer.precedents.similar_decided_cases", broken)
    html = panel(client, alice, case)
    assert "Precedents are unavailable just now" in html


# The precedents' share of the case page: the query vector, the index's catch-up (watermarks and
# new rows), and the re-check of the hits; none of it grows with the number of cases.
PRECEDENT_QUERIES_MAX = 8


def test_the_panel_costs_a_fixed_number_of_queries_however_many_cases_are_decided(
    client, platform, spam_policy, alice, bob
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.reviewer.test_query_counts import CASE_MAX

    client.force_login(alice)
    case = embedded(platform, RINGS_AGAIN, author_id="q")
    counts = []
    for n in (6, 40):
        made = [flag(platform, content=f"{RINGS} number {i}", author_id=f"x{i}") for i in range(n)]
        precedents.embed_items([c.item_id for c in made])
        for other in made:
            decide(bob, other, "violating", "remove", ["SP2.b"])
        client.get(f"/cases/{case.id}/")  # the index catches up with the new rows
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(f"/cases/{case.id}/")
        assert response.status_code == 200 and response.content.count(b"data-case=") == 5
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1], counts
    assert counts[1] <= CASE_MAX + PRECEDENT_QUERIES_MAX, counts
