"""Auditor pages of the appeals app. Included by `reviewer/urls.py` under the site root."""

from django.urls import path

from . import views

app_name = "appeals"

urlpatterns = [
    path("exports/", views.export_page, name="export"),
    path("exports/decisions.csv", views.export_download, {"fmt": "csv"}, name="export_csv"),
    path("exports/decisions.jsonl", views.export_download, {"fmt": "jsonl"}, name="export_jsonl"),
    path(
        "exports/statements-of-reasons.jsonl",
        views.export_download,
        {"fmt": "dsa"},
        name="export_dsa",
    ),
]
