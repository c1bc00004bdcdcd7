"""The export page for auditors: the form and the streamed downloads.

Thin views over `appeals.disclosure.exports`; the permission is checked here, whatever the template shows.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from appeals.disclosure.exports import CONTENT_TYPES, FILE_NAMES, Export, ExportFilters
from appeals.models import AuditEvent
from policies.models import Policy

from .blind_first import may_download_exports


class ExportForm(forms.Form):
    since = forms.DateField(
        required=False, label="Decided on or after", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="Decided before", widget=forms.DateInput(attrs={"type": "date"})
    )
    policy = forms.ChoiceField(required=False, label="Policy")
    pseudonymise = forms.BooleanField(
        required=False,
        label="Pseudonymise user and reviewer ids",
        help_text="Stable pseudonyms (HMAC-SHA256) in place of author, reporter, appellant and "
        "reviewer ids.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["policy"].choices = [("", "All policies")] + list(
            Policy.objects.order_by("name").values_list("slug", "name")
        )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until <= since:
            raise ValidationError("“Decided before” must be after “Decided on or after”.")
        return cleaned

    def filters(self) -> ExportFilters:
        def start_of(day):
            return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC) if day else None

        data = self.cleaned_data
        return ExportFilters(
            since=start_of(data["since"]),
            until=start_of(data["until"]),
            policy=data["policy"],
            pseudonymise=data["pseudonymise"],
        )


@require_GET
@permission_required("appeals.export_decisions", raise_exception=True)
def export_page(request):
    return render(request, "reviewer/export.html", {"form": ExportForm()})


@require_GET
@permission_required("appeals.export_decisions", raise_exception=True)
def export_download(request, fmt: str):
    if problem := may_download_exports(request.user):
        raise PermissionDenied(problem)
    form = ExportForm(request.GET)
    if not form.is_valid():
        return render(request, "reviewer/export.html", {"form": form}, status=400)
    try:
        export = Export(
            fmt=fmt, filters=form.filters(), actor=request.user, source=AuditEvent.Source.CONSOLE
        )
    except ValidationError as error:
        form.add_error(
            None,
            ValidationError(
                [
                    "A policy's DSA mapping is not valid; fix it before exporting statements:",
                    *error.messages,
                ]
            ),
        )
        return render(request, "reviewer/export.html", {"form": form}, status=400)
    response = StreamingHttpResponse(export.chunks(), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{FILE_NAMES[fmt]}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
