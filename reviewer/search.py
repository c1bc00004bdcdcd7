"""The search page: cases by external id, author, reporter or text, among those the viewer may
read (appeals/review/search.py)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.views.decorators.http import require_GET

from appeals.review.permissions import workable_queues
from appeals.review.search import FIELDS, MAX_QUERY_LENGTH, search_cases

from .preferences import media_prefs


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=MAX_QUERY_LENGTH, label="Search")
    field = forms.ChoiceField(required=False, choices=list(FIELDS.items()), label="In")


@require_GET
def search_page(request):
    user = request.user
    if not (workable_queues(user) or user.has_perm("appeals.view_all_cases")):
        raise PermissionDenied("you may not read cases")
    form = SearchForm(request.GET)
    cases, errors = [], []
    if form.is_valid():
        try:
            cases = search_cases(
                user=user, query=form.cleaned_data["q"], field=form.cleaned_data["field"] or "any"
            )
        except ValidationError as error:
            errors = [f"{name}: {'; '.join(msgs)}" for name, msgs in error.message_dict.items()]
    else:
        errors = [f"{name}: {'; '.join(msgs)}" for name, msgs in form.errors.items()]
    return render(
        request,
        "reviewer/search.html",
        {
            "form": form,
            "cases": cases,
            "errors": errors,
            "query": form.data.get("q", ""),
            "text_prefs": media_prefs(user) if cases else None,
        },
    )
