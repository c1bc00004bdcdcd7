"""A policy is a named, numbered series of immutable versions; cases cite one version."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from .dsa_mapping import validate_dsa_mapping


class ReasoningEffort(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"


class Policy(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    # Empty: the engine's default (SAFEGUARD_REASONING_EFFORT) applies to this policy's drafts.
    reasoning_effort = models.CharField(
        max_length=6,
        choices=ReasoningEffort,
        blank=True,
        default="",
        help_text="Empty: the deployment's default, SAFEGUARD_REASONING_EFFORT.",
    )
    # Appeal rules (DSA Art. 20): how long after a decision an appeal is accepted, and how
    # soon a case under this policy should be decided.
    appeal_window_days = models.PositiveIntegerField(default=183)
    decide_within_hours = models.PositiveIntegerField(default=24)
    appeal_decide_within_hours = models.PositiveIntegerField(default=72)
    # Rule id prefix -> DSA category / decision ground, for statements of reasons.
    dsa_mapping = models.JSONField(
        "DSA mapping",
        default=dict,
        blank=True,
        help_text=(
            "The policy's rules in the EU DSA Transparency Database's terms: {\"default\": "
            '{"category": "STATEMENT_CATEGORY_…", "decision_ground": "DECISION_GROUND_…"}, '
            '"rules": {"SP3": {…}, "SP3.b": {…}}}; a rule takes default, then its tier, then '
            "its own entry. Empty: the mapping shipped for this policy, if any, else "
            '"other violation of terms and conditions".'
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "policies"
        ordering = ["name"]
        permissions = [
            ("manage_policy", "Can import and publish policy versions"),
            ("override_publish_gate", "Can publish a version the evaluation gate refused"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # A broken mapping is refused here, when a policy admin saves it, rather than when an
        # export of statements of reasons meets it.
        validate_dsa_mapping(self.dsa_mapping)

    def current_version(self) -> PolicyVersion | None:
        """The published version in force (the newest published one); None before any."""
        return (
            self.versions.filter(status=PolicyVersion.Status.PUBLISHED).order_by("-number").first()
        )


class PolicyVersionQuerySet(models.QuerySet):
    def published(self):
        return self.filter(status=PolicyVersion.Status.PUBLISHED)


class PolicyVersion(models.Model):
    """The text of a policy as it stood. A draft may be edited in the workbench until it is
    published; a published version is never edited: a change is a new version."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    text = models.TextField()
    sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=9, choices=Status, default=Status.PUBLISHED)
    source = models.CharField(max_length=300, blank=True)
    licence_notice = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Drafts are edited in the workbench; publishing (an audited step) freezes the text.
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = PolicyVersionQuerySet.as_manager()

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "number"], name="policy_version_number_unique"
            ),
            models.CheckConstraint(
                condition=Q(number__gte=1), name="policy_version_number_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.slug} v{self.number}"

    @property
    def label(self) -> str:
        return f"{self.policy.slug} v{self.number}"

    def rule_ids(self) -> list[str]:
        return [rule.rule_id for rule in self.rules.all()]


class PolicyRule(models.Model):
    """A rule a policy version defines, e.g. `GV1` or `SP2.b`, with the text that defines it."""

    version = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="rules")
    rule_id = models.CharField(max_length=40)
    text = models.TextField()
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["version", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "rule_id"], name="policy_rule_unique_per_version"
            )
        ]

    def __str__(self) -> str:
        return self.rule_id


# The workbench's rows and the second-opinion settings live in their own modules; importing them
# here registers them with the app.
from .second_opinion_settings import SecondOpinionSetting  # noqa: E402, F401
from .workbench.models import (  # noqa: E402, F401
    EvaluationResult,
    EvaluationRun,
    GoldenItem,
    GoldenSet,
)
