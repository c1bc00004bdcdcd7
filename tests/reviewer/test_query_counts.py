"""The hot pages cost a fixed number of queries, however many cases there are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from appeals.review import queueing
from tests.builders import flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

# Ceilings, with a little headroom over today's counts (session, user, permissions included).
DASHBOARD_MAX = 10  # 3 capped per-queue figures (alice works one queue) + session, user, cards
QUEUE_MAX = 8  # 7, and the reviewer's preference for blurring harmful text in the excerpts
# 12, the fast tier's signals (appeals/triage/), second opinions (settings, rows), the reviewer's
# display preferences, the near-duplicate group, the precedents' query vector
CASE_MAX = 18


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def _casework(platform, alice, n):
    """n cases by one author, each with a draft; alice holds a few of them."""
    cases = [flag(platform, author_id="u-1", reporter_id="r-1") for _ in range(n)]
    for case in cases:
        ready_draft(case)
    for case in cases[:3]:
        queueing.claim_case(reviewer=alice, case_id=case.id)
    return cases


@pytest.mark.parametrize("page", ["dashboard", "queue", "case"])
def test_page_queries_do_not_grow_with_the_number_of_cases(
    client, alice, platform, spam_policy, django_assert_max_num_queries, page
):
    client.force_login(alice)
    counts = []
    for n in (3, 30):
        cases = _casework(platform, alice, n)
        url = {
            "dashboard": reverse("dashboard"),
            "queue": reverse("queue_list", args=["flags"]),
            "case": reverse("case_detail", args=[cases[0].id]),
        }[page]
        counts.append(_queries(client, url))
    print(f"{page}: {counts[0]} queries with 3 cases, {counts[1]} with 30")
    assert counts[0] == counts[1], f"{page}: {counts[0]} queries with 3 cases, {counts[1]} with 30+"
    ceiling = {"dashboard": DASHBOARD_MAX, "queue": QUEUE_MAX, "case": CASE_MAX}[page]
    with django_assert_max_num_queries(ceiling):
        client.get(url)
