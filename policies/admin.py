"""Admin for policy admins. Versions are immutable: adding one goes through the import service,
and a saved version can be read but never edited or deleted. A new version is saved as a draft;
publishing happens in the workbench, behind the evaluation gate, as an audit event."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from .models import Policy, PolicyRule, PolicyVersion
from .services import check_policy_text, import_policy_version, save_policy_settings


class PolicyVersionInline(admin.TabularInline):
    model = PolicyVersion
    fields = ("number", "status", "sha256", "created_at", "created_by")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "reasoning_effort", "appeal_window_days", "decide_within_hours")
    search_fields = ("name", "slug")
    inlines = [PolicyVersionInline]

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # Through the service, so that the change (old and new values) is an audit event.
        save_policy_settings(policy=obj, actor=request.user, via="admin")


class NewVersionForm(forms.ModelForm):
    slug = forms.SlugField(help_text="The policy this text is a new version of (created if new).")
    name = forms.CharField(max_length=200)

    class Meta:
        model = PolicyVersion
        fields = ("text", "source", "licence_notice")

    def clean_text(self):
        text = self.cleaned_data["text"]
        try:
            check_policy_text(text)
        except ValidationError as error:
            raise ValidationError(error.message_dict["text"]) from None
        return text


class PolicyRuleInline(admin.TabularInline):
    model = PolicyRule
    fields = ("rule_id", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "sha256", "created_at")
    list_filter = ("status", "policy")
    inlines = [PolicyRuleInline]
    # No publish action here: a version is saved as a draft and published from the workbench
    # (reviewer/workbench.py), where the evaluation gate runs and publishing is an audit event.
    actions = None

    def get_inlines(self, request, obj):
        # A new version's rules come from its text (the import service), not from a formset: the
        # add page has no inline, so Django's change message has no unsaved formset to read.
        return self.inlines if obj is not None else []

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = NewVersionForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("slug", "name", "text", "source", "licence_notice")
        return (
            "policy",
            "number",
            "status",
            "sha256",
            "source",
            "licence_notice",
            "text",
            "created_at",
            "created_by",
        )

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:
            return  # versions are immutable
        try:
            version = import_policy_version(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                text=form.cleaned_data["text"],
                source=form.cleaned_data.get("source", ""),
                licence_notice=form.cleaned_data.get("licence_notice", ""),
                publish=False,  # published from the workbench, through the gate
                actor=request.user,
                via="admin",
            )
        except ValidationError as error:
            messages.error(request, "; ".join(error.messages))
            raise
        # The admin goes on with `obj` (its message, its redirect): make it the saved version.
        obj.__dict__.update(version.__dict__)
        obj._state = version._state

    def save_related(self, request, form, formsets, change):
        # Nothing to write (rules come from the text, versions are immutable), but Django's change
        # message reads each formset's new/changed/deleted objects, which only save() records.
        for formset in formsets:
            formset.save(commit=False)

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("policies.manage_policy")

    def has_add_permission(self, request):
        return request.user.has_perm("policies.manage_policy")


from . import second_opinion_admin  # noqa: E402, F401 - registers the second-opinion settings
