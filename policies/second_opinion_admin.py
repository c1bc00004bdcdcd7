"""Admin for the second-opinion models a policy asks (policies/second_opinion_settings.py).

The form's checks are the model's `clean`: an unknown category for the adapter, a rule the
policy's version does not define, a key pasted where the variable's name belongs, a URL that is
not http(s) each come back as an error on the field, naming the problem. Every save is an audit
event of the policy (`policy_changed`); settings are switched off, never deleted."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from .second_opinion import categories_of
from .second_opinion_settings import Adapter, SecondOpinionSetting, save_second_opinion_setting


class SecondOpinionSettingForm(forms.ModelForm):
    class Meta:
        model = SecondOpinionSetting
        fields = (
            "policy",
            "adapter",
            "base_url",
            "model",
            "api_key_env",
            "timeout_seconds",
            "category_rules",
            "policy_text",
            "enabled",
        )
        widgets = {"category_rules": forms.Textarea(attrs={"rows": 6, "cols": 60})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        listing = "; ".join(
            f"{label}: {', '.join(categories_of(kind))}" for kind, label in Adapter.choices
        )
        self.fields["category_rules"].help_text += f" Categories by model — {listing}."


@admin.register(SecondOpinionSetting)
class SecondOpinionSettingAdmin(admin.ModelAdmin):
    form = SecondOpinionSettingForm
    list_display = ("__str__", "policy", "base_url", "api_key_env", "timeout_seconds", "enabled")
    list_filter = ("enabled", "adapter", "policy")
    search_fields = ("model", "policy__slug")

    def save_model(self, request, obj, form, change):
        # Through the service, so that the change (old and new values) is an audit event.
        save_second_opinion_setting(setting=obj, actor=request.user, via="admin")

    def has_delete_permission(self, request, obj=None):
        # Stored opinions name their setting; switch a model off (enabled) instead.
        return False
