"""Search: by external id, author, reporter and text, only among the cases the viewer may read
(a reviewer of flags never finds an appeal; an auditor finds everything; a policy admin may not
search), through the page as people use it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from appeals.review.search import search_cases
from tests.builders import appeal, flag

pytestmark = pytest.mark.django_db


@pytest.fixture
def casework(platform, spam_policy):
    rings = flag(
        platform,
        external_id="post-rings",
        content="Buy gold rings here, cheapest jewellery in town",
        author_id="author-7",
        reporter_id="reporter-3",
    )
    hello = flag(
        platform,
        external_id="post-hello",
        content="Hi Sam, here is the quarterly report you asked for",
        author_id="author-8",
    )
    complaint = appeal(
        platform,
        item_external_id="post-rings",
        appellant_id="author-7",
        statement="My rings shop is a real business",
    )
    return {"rings": rings, "hello": hello, "appeal": complaint}


def ids(cases):
    return {case.id for case in cases}


def test_ids_match_exactly_in_their_field(casework, carol):
    rings, hello, complaint = casework["rings"], casework["hello"], casework["appeal"]
    assert ids(search_cases(user=carol, query="post-rings", field="external_id")) == {
        rings.id,
        complaint.id,
    }
    assert ids(search_cases(user=carol, query="post-ring", field="external_id")) == set()
    assert ids(search_cases(user=carol, query="author-8", field="author")) == {hello.id}
    assert ids(search_cases(user=carol, query="author-7", field="author")) == {
        rings.id,
        complaint.id,
    }
    # The appeal is against the same item, so it has the same reporter.
    assert ids(search_cases(user=carol, query="reporter-3", field="reporter")) == {
        rings.id,
        complaint.id,
    }
    assert ids(search_cases(user=carol, query="reporter-9", field="reporter")) == set()


def test_text_matches_words_in_the_content_and_the_appeal_statement(casework, carol):
    found = ids(search_cases(user=carol, query="rings", field="text"))
    assert found == {casework["rings"].id, casework["appeal"].id}
    assert ids(search_cases(user=carol, query="quarterly report")) == {casework["hello"].id}
    if connection.vendor == "postgresql":  # stemming: "reports" finds "report"
        assert ids(search_cases(user=carol, query="reports", field="text")) == {
            casework["hello"].id
        }


def test_a_reviewer_finds_only_the_queues_they_work_and_an_auditor_finds_all(casework, alice, erin):
    assert ids(search_cases(user=alice, query="post-rings", field="external_id")) == {
        casework["rings"].id
    }
    assert casework["appeal"].id not in ids(search_cases(user=alice, query="rings"))
    assert casework["appeal"].id in ids(search_cases(user=erin, query="rings"))


def test_bad_searches_are_refused_with_the_reason(alice):
    with pytest.raises(ValidationError, match="search in one of"):
        search_cases(user=alice, query="x", field="password")
    with pytest.raises(ValidationError, match="at most 200"):
        search_cases(user=alice, query="x" * 201)
    assert search_cases(user=alice, query="   ") == []


def test_the_page_shows_what_the_viewer_may_read(client, casework, alice, erin, dave):
    client.force_login(alice)
    page = client.get("/search/", {"q": "rings"}).content.decode()
    assert f'href="/cases/{casework["rings"].id}/"' in page
    assert f'href="/cases/{casework["appeal"].id}/"' not in page
    assert "<code>author-7</code>" in page
    client.force_login(erin)
    page = client.get("/search/", {"q": "rings"}).content.decode()
    assert f'href="/cases/{casework["appeal"].id}/"' in page
    assert "at most 200" in client.get("/search/", {"q": "x" * 300}).content.decode()
    client.force_login(dave)
    assert client.get("/search/", {"q": "rings"}).status_code == 403


def test_postgres_finds_item_text_through_its_full_text_index(casework):
    if connection.vendor != "postgresql":
        pytest.skip("the GIN index is PostgreSQL's")
    from django.contrib.postgres.search import SearchQuery, SearchVector

    from appeals.models import Item

    terms = SearchQuery("rings", config="english", search_type="websearch")
    query = (
        Item.objects.annotate(d=SearchVector("content", config="english")).filter(d=terms)
    ).values("id")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "item_content_fts" in plan
