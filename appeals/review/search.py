"""Finding cases: by external id (the case's or its item's), author, reporter or text, among the
cases the person may read. PostgreSQL searches text with its full-text search (the words, in any
form English stemming matches, ranked); SQLite, the embedded default, falls back to a plain
case-insensitive substring match."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet

from appeals.models import Case, Item

from .permissions import workable_queues

MAX_QUERY_LENGTH = 200
RESULT_LIMIT = 50
FIELDS = {
    "any": "Anything",
    "external_id": "External id",
    "author": "Author",
    "reporter": "Reporter",
    "text": "Text",
}


def readable_cases(user) -> QuerySet:
    """What `can_view_case` allows, as a queryset: every case for auditors, else the cases in
    the queues the person works and those they hold."""
    if user.has_perm("appeals.view_all_cases"):
        return Case.objects.all()
    return Case.objects.filter(Q(queue__in=workable_queues(user)) | Q(claimed_by_id=user.id))


def _text_match(cases: QuerySet, query: str) -> QuerySet:
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

        terms = SearchQuery(query, config="english", search_type="websearch")
        # Items through their GIN index (migration 0010); appeal statements, few, directly.
        items = (
            Item.objects.annotate(search_document=SearchVector("content", config="english"))
            .filter(search_document=terms)
            .values("id")
        )
        statement = SearchVector("statement", config="english")
        return (
            cases.annotate(
                statement_document=statement,
                search_rank=SearchRank(SearchVector("item__content", config="english"), terms)
                + SearchRank(statement, terms),
            )
            .filter(Q(item_id__in=items) | (Q(kind=Case.Kind.APPEAL) & Q(statement_document=terms)))
            .order_by("-search_rank", "-created_at", "-id")
        )
    return cases.filter(Q(item__content__icontains=query) | Q(statement__icontains=query))


def search_cases(*, user, query: str, field: str = "any", limit: int = RESULT_LIMIT) -> list[Case]:
    """Cases the user may read matching `query` in `field`, newest first (best first for text
    on PostgreSQL). Ids match exactly; text matches words."""
    query = " ".join(query.split())
    if field not in FIELDS:
        raise ValidationError({"field": f"search in one of: {', '.join(FIELDS)}"})
    if not query:
        return []
    if len(query) > MAX_QUERY_LENGTH:
        raise ValidationError({"q": f"at most {MAX_QUERY_LENGTH} characters"})
    cases = readable_cases(user).select_related("item", "policy_version__policy", "decision")
    ids = {
        "external_id": Q(external_id=query) | Q(item__external_id=query),
        "author": Q(item__author_id=query) | Q(appellant_id=query),
        "reporter": Q(item__reporter_id=query),
    }
    if field in ids:
        found = cases.filter(ids[field]).order_by("-created_at", "-id")
    elif field == "text":
        found = _text_match(cases, query)
    else:
        exact = list(
            cases.filter(ids["external_id"] | ids["author"] | ids["reporter"]).order_by(
                "-created_at", "-id"
            )[:limit]
        )
        seen = {case.id for case in exact}
        text = [c for c in _text_match(cases, query)[: limit + len(seen)] if c.id not in seen]
        return (exact + text)[:limit]
    return list(found[:limit])
