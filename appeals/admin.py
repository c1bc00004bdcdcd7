"""Admin: platforms and their tokens are managed here; cases and the audit log are read-only."""

from __future__ import annotations

from django.contrib import admin

from .intake.tokens import revoke_api_token
from .models import (
    ApiToken,
    AuditEvent,
    Case,
    Decision,
    DeepCheckSetting,
    Platform,
    PriorityRule,
    QueueSetting,
    Recommendation,
)


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    fields = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    # All read-only: revoking is the "Revoke" action on API tokens (audited), and nothing
    # un-revokes (the model and a database trigger refuse it too).
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False  # tokens are created with `manage.py create_api_token`, shown once


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "platform", "created_at", "last_used_at", "revoked_at")
    list_filter = ("platform", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    fields = ("platform", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a revoked token's row is the record that it was revoked

    @admin.action(description="Revoke selected API tokens (for good)", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for token in queryset.select_related("platform").filter(revoked_at__isnull=True):
            revoke_api_token(token=token, source=AuditEvent.Source.ADMIN, actor=request.user)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s); this cannot be undone.")


@admin.register(Platform)
class PlatformAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "callback_url")
    inlines = [ApiTokenInline]


@admin.register(QueueSetting)
class QueueSettingAdmin(admin.ModelAdmin):
    list_display = ("queue", "blind_first")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Case)
class CaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "queue", "status", "external_id", "policy_version", "due_at")
    list_filter = ("kind", "queue", "status")
    search_fields = ("external_id",)


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "case",
        "status",
        "failure_reason",
        "violation",
        "model_id",
        "finished_at",
    )
    list_filter = ("status", "failure_reason", "backend")


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = (
        "case",
        "outcome",
        "action",
        "decided_by",
        "decided_at",
        "agrees_with_model",
        "rules_agree",
        "action_agrees",
    )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "case", "actor_label", "created_at")
    list_filter = ("kind",)


# The fast tier (appeals/triage/): per-queue priority rules and which cases get the deep check.
@admin.register(PriorityRule)
class PriorityRuleAdmin(admin.ModelAdmin):
    list_display = ("queue", "kind", "min_score", "source", "priority", "due_within", "enabled")
    list_filter = ("queue", "kind", "enabled")


@admin.register(DeepCheckSetting)
class DeepCheckSettingAdmin(admin.ModelAdmin):
    list_display = ("policy", "mode", "threshold")
