"""URL patterns of the review console's pages (the API lives under /api/v1/)."""

from django.urls import path

from . import callbacks, console_pages, exports, groups, preferences, search, views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("queues/<str:queue>/", views.queue_list, name="queue_list"),
    path("queues/<str:queue>/next/", views.start_reviewing, name="start_reviewing"),
    path(
        "queues/<str:queue>/requeue-drafts/",
        console_pages.queue_requeue_drafts,
        name="queue_requeue_drafts",
    ),
    path("cases/<int:case_id>/", views.case_detail, name="case_detail"),
    path(
        "cases/<int:case_id>/media/preview/",
        preferences.case_media_preview,
        name="case_media_preview",
    ),
    path("preferences/", preferences.preferences_page, name="preferences"),
    path(
        "cases/<int:case_id>/media/original/",
        views.case_media,
        {"variant": "original"},
        name="case_media_original",
    ),
    path("cases/<int:case_id>/claim/", views.case_claim, name="case_claim"),
    path("cases/<int:case_id>/decide/", views.case_decide, name="case_decide"),
    path("cases/<int:case_id>/blind-call/", views.case_blind_call, name="case_blind_call"),
    path("cases/<int:case_id>/escalate/", views.case_escalate, name="case_escalate"),
    path("cases/<int:case_id>/skip/", views.case_skip, name="case_skip"),
    path("cases/<int:case_id>/release/", views.case_release, name="case_release"),
    path("cases/<int:case_id>/retry-draft/", views.case_retry_draft, name="case_retry_draft"),
    path("cases/<int:case_id>/renew-lease/", views.case_renew_lease, name="case_renew_lease"),
    path("groups/<int:group_id>/", groups.group_detail, name="group_detail"),
    path("groups/<int:group_id>/claim/", groups.group_claim, name="group_claim"),
    path("groups/<int:group_id>/confirm/", groups.group_confirm, name="group_confirm"),
    path("groups/<int:group_id>/release/", groups.group_release, name="group_release"),
    path("groups/<int:group_id>/renew-lease/", groups.group_renew_lease, name="group_renew_lease"),
    path("groups/<int:group_id>/decide/", groups.group_decide, name="group_decide"),
    path(
        "groups/<int:group_id>/members/<int:case_id>/remove/",
        groups.group_remove_member,
        name="group_remove_member",
    ),
    path("policies/versions/<int:version_id>/", views.policy_version, name="policy_version"),
    path(
        "policies/versions/<int:version_id>/rules/<str:rule_id>/",
        views.policy_rule,
        name="policy_rule",
    ),
    path("quality/", views.quality_page, name="quality"),
    path("callbacks/<int:delivery_id>/retry/", callbacks.retry_callback, name="retry_callback"),
    path("audit/", console_pages.audit_log, name="audit_log"),
    path("policies/", console_pages.policies_page, name="policies"),
    path("search/", search.search_page, name="search"),
    path("exports/", exports.export_page, name="export"),
    path("exports/decisions.csv", exports.export_download, {"fmt": "csv"}, name="export_csv"),
    path("exports/decisions.jsonl", exports.export_download, {"fmt": "jsonl"}, name="export_jsonl"),
    path(
        "exports/statements-of-reasons.jsonl",
        exports.export_download,
        {"fmt": "dsa"},
        name="export_dsa",
    ),
]
