"""Which second-opinion models a policy asks, and how to reach them (policies/second_opinion/
holds the adapters). A setting names the environment variable that holds an API key, never the
key: secrets stay out of the database, its backups and its exports."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction

from .second_opinion import ADAPTERS, OpinionSettings, categories_of

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


class Adapter(models.TextChoices):
    LLAMA_GUARD_3 = "llama_guard_3", "Llama Guard 3"
    LLAMA_GUARD_4 = "llama_guard_4", "Llama Guard 4"
    SHIELDGEMMA = "shieldgemma", "ShieldGemma"
    QWEN3GUARD = "qwen3guard", "Qwen3Guard"
    NEMOGUARD = "nemoguard", "NemoGuard content safety"
    COPE = "cope", "CoPE"


class SecondOpinionSettingQuerySet(models.QuerySet):
    def enabled(self):
        return self.filter(enabled=True)


class SecondOpinionSetting(models.Model):
    """One model a policy's cases are shown to at intake, beside the safeguard draft."""

    policy = models.ForeignKey(
        "policies.Policy", on_delete=models.CASCADE, related_name="second_opinion_settings"
    )
    adapter = models.CharField(max_length=16, choices=Adapter)
    base_url = models.CharField(
        "base URL",
        max_length=300,
        help_text="The OpenAI-compatible server, e.g. http://guard-host:8000/v1 (vLLM).",
    )
    model = models.CharField(max_length=200, help_text="The name the server serves the model as.")
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        help_text="The NAME of the environment variable holding the server's API key on the "
        "workers (e.g. GUARD_API_KEY), never the key. Empty: no key is sent.",
    )
    timeout_seconds = models.FloatField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(600)]
    )
    category_rules = models.JSONField(
        "category → rules",
        default=dict,
        blank=True,
        help_text='The model\'s categories mapped to this policy\'s rules, e.g. {"S2": ["SP2.b"]}. '
        "ShieldGemma is asked about the harms named here (all four when empty); CoPE's one "
        'category is "violating".',
    )
    policy_text = models.TextField(
        "CoPE policy",
        blank=True,
        help_text="CoPE only: the policy it reads (its labels). Empty: the case's policy version.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SecondOpinionSettingQuerySet.as_manager()

    class Meta:
        ordering = ["policy", "adapter", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "adapter", "model"], name="second_opinion_setting_unique"
            ),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__gte=1, timeout_seconds__lte=600),
                name="second_opinion_timeout_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_adapter_display()} · {self.model}"

    @property
    def label(self) -> str:
        return self.get_adapter_display()

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            errors["base_url"] = "Give an http:// or https:// URL, ending in /v1."
        if self.api_key_env and not ENV_NAME.fullmatch(self.api_key_env):
            errors["api_key_env"] = (
                "Name the environment variable that holds the key (letters, digits and _, "
                "e.g. GUARD_API_KEY), not the key itself."
            )
        if self.policy_text and self.adapter != Adapter.COPE:
            errors["policy_text"] = "Only CoPE reads a policy text; leave this empty."
        problem = self._mapping_problem()
        if problem:
            errors["category_rules"] = problem
        if errors:
            raise ValidationError(errors)

    def _mapping_problem(self) -> str:
        mapping = self.category_rules
        if mapping in (None, ""):
            self.category_rules = mapping = {}
        if not isinstance(mapping, dict):
            return 'Give a JSON object of category → list of rule ids, e.g. {"S2": ["SP2.b"]}.'
        if self.adapter not in ADAPTERS or not mapping:
            return ""
        known = categories_of(self.adapter)
        unknown = [c for c in mapping if c not in known]
        if unknown:
            return (
                f"{', '.join(map(repr, unknown))} "
                f"{'is not a category' if len(unknown) == 1 else 'are not categories'} of "
                f"{Adapter(self.adapter).label}; its categories are {', '.join(known)}."
            )
        for category, rules in mapping.items():
            if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
                return f'{category!r} must map to a list of rule ids, e.g. ["SP2.b"].'
        version = self._version_for_rules()
        if version is None:
            return "The policy has no version yet: add one before mapping categories to rules."
        defined = set(version.rule_ids())
        missing = sorted({r for rules in mapping.values() for r in rules} - defined)
        if missing:
            return f"Not rules of {version.label}: {', '.join(missing)}."
        return ""

    def _version_for_rules(self):
        """The version a mapping is checked against: the one in force, else the newest."""
        if self.policy_id is None:
            return None
        return self.policy.current_version() or self.policy.versions.order_by("-number").first()

    def opinion_settings(
        self, *, policy_text: str, environ: Mapping[str, str] | None = None
    ) -> tuple[OpinionSettings, str]:
        """The adapter's settings for one case, and '' or why it cannot be asked (an unset key)."""
        env = os.environ if environ is None else environ
        api_key = ""
        problem = ""
        if self.api_key_env:
            api_key = env.get(self.api_key_env, "")
            if not api_key:
                problem = f"The environment variable {self.api_key_env} (the API key) is not set."
        return (
            OpinionSettings(
                adapter=self.adapter,
                base_url=self.base_url.rstrip("/"),
                model=self.model,
                api_key=api_key,
                timeout_s=self.timeout_seconds,
                category_rules={k: tuple(v) for k, v in (self.category_rules or {}).items()},
                policy_text=self.policy_text or policy_text,
            ),
            problem,
        )


AUDITED_FIELDS = (
    "adapter",
    "base_url",
    "model",
    "api_key_env",
    "timeout_seconds",
    "category_rules",
    "policy_text",
    "enabled",
)


@transaction.atomic
def save_second_opinion_setting(
    *, setting: SecondOpinionSetting, actor=None, via: str = "admin"
) -> SecondOpinionSetting:
    """Save a validated setting and announce it as a change of its policy's settings (the
    audit log's `policy_changed`, each field with its old and new value): which outside model
    a policy's content is sent to is part of the policy. A save that changes nothing announces
    nothing."""
    from .signals import policy_settings_changed

    stored = {}
    if setting.id is not None:
        stored = (
            SecondOpinionSetting.objects.select_for_update()
            .values(*AUDITED_FIELDS)
            .get(id=setting.id)
        )
    setting.save()
    prefix = f"second_opinion[{setting.id}]"
    changes = {
        f"{prefix}.{field}": [stored.get(field), getattr(setting, field)]
        for field in AUDITED_FIELDS
        if not stored or stored[field] != getattr(setting, field)
    }
    if changes:
        policy_settings_changed.send(
            sender=SecondOpinionSetting,
            policy=setting.policy,
            created=False,
            changes=changes,
            actor=actor,
            via=via,
        )
    return setting
