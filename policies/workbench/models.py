"""Golden sets and evaluation runs. Imported by `policies.models`, so they belong to `policies`."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class GoldenSet(models.Model):
    """A named set of labelled items a policy's versions are measured against."""

    class Kind(models.TextChoices):
        CURATED = "curated", "Curated"
        REPLAY = "replay", "Replay of decided cases"

    policy = models.ForeignKey(
        "policies.Policy", on_delete=models.PROTECT, related_name="golden_sets"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind, default=Kind.CURATED)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=300, blank=True)
    licence_notice = models.TextField(blank=True)
    # The set that decides whether a new version may be published (one per policy).
    gates_publishing = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["policy", "name"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "name"], name="golden_set_name_unique"),
            models.UniqueConstraint(
                fields=["policy"],
                condition=Q(gates_publishing=True),
                name="golden_set_one_gate_per_policy",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.slug}: {self.name}"


class GoldenItem(models.Model):
    """One labelled piece of content: what a correct answer under the policy is."""

    golden_set = models.ForeignKey(GoldenSet, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    content = models.TextField()
    content_type = models.CharField(max_length=40, default="text")
    expected_violation = models.BooleanField()
    expected_rule_ids = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=8, blank=True)  # ISO 639-1, detected when not given
    note = models.TextField(blank=True)
    # A subgroup to report pass rates by, e.g. a HateCheck functionality or a moderation category.
    group = models.CharField(max_length=100, blank=True)
    source = models.CharField(max_length=300, blank=True)
    # The case the label came from (an id in `appeals`; no foreign key: policies sits below it).
    source_case_id = models.BigIntegerField(null=True, blank=True)
    must_pass = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["golden_set", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["golden_set", "position"], name="golden_item_position_unique"
            ),
            # "Add to golden set" twice from one case adds it once.
            models.UniqueConstraint(
                fields=["golden_set", "source_case_id"],
                condition=Q(source_case_id__isnull=False),
                name="golden_item_case_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.golden_set_id}#{self.position}"


class EvaluationRunQuerySet(models.QuerySet):
    def finished(self):
        return self.filter(status=EvaluationRun.Status.DONE)


class EvaluationRun(models.Model):
    """A policy version measured against a golden set: one result per item, written once."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    policy_version = models.ForeignKey(
        "policies.PolicyVersion", on_delete=models.PROTECT, related_name="evaluation_runs"
    )
    golden_set = models.ForeignKey(GoldenSet, on_delete=models.PROTECT, related_name="runs")
    status = models.CharField(max_length=9, choices=Status, default=Status.QUEUED)
    item_limit = models.PositiveIntegerField(null=True, blank=True)  # first K items only
    item_count = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    # The worker that holds the run (a random token) and when it last showed signs of life.
    run_token = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    backend = models.CharField(max_length=40, blank=True)
    model_id = models.CharField(max_length=300, blank=True)
    metrics = models.JSONField(default=dict, blank=True)  # metrics.summarise(), when done

    objects = EvaluationRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["status", "heartbeat_at"],
                condition=Q(status__in=["queued", "running"]),
                name="evaluation_run_active",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.id}: {self.policy_version} × {self.golden_set.name}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class EvaluationResult(models.Model):
    """What the model said about one golden item in one run. Exactly one per (run, item)."""

    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(GoldenItem, on_delete=models.CASCADE, related_name="results")
    ready = models.BooleanField()
    failure_reason = models.CharField(max_length=40, blank=True)
    failure_detail = models.TextField(blank=True)
    violation = models.BooleanField(null=True)
    rule_ids = models.JSONField(default=list, blank=True)
    unknown_rule_ids = models.JSONField(default=list, blank=True)
    confidence = models.CharField(max_length=8, blank=True)
    rationale = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "item__position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "item"], name="evaluation_result_once_per_item")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} item {self.item_id}"
