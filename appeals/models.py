"""What a case is, what the model said about it, what a person decided, and what happened.

Three separate records, after the field's habit: why a case is queued (`Case`), what the model
said (`Recommendation`), what we concluded (`Decision`). `AuditEvent` is the append-only log of
every state change. State changes happen in the service modules, never in `save()`.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from policies.models import PolicyVersion


class Platform(models.Model):
    """A platform that sends cases in. External ids are unique per platform."""

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=200)
    callback_url = models.URLField(blank=True)
    callback_secret = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    """A bearer token for the intake API. Only its SHA-256 is stored."""

    platform = models.ForeignKey(Platform, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    token_sha256 = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Set once, by appeals.intake.tokens.revoke_api_token, and never cleared or moved: save() refuses it
    # here and a trigger (migration 0006) refuses it in the database.
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def save(self, *args, **kwargs):
        if self.id is not None:
            stored = (
                ApiToken.objects.filter(id=self.id).values_list("revoked_at", flat=True).first()
            )
            if stored is not None and self.revoked_at != stored:
                raise ValidationError(
                    {
                        "revoked_at": f"token {self.prefix}… was revoked on "
                        f"{stored:%Y-%m-%d %H:%M} UTC and stays revoked; issue a new token instead"
                    }
                )
            if stored is None and self.revoked_at is not None:
                raise ValidationError(
                    {"revoked_at": "revoke a token with revoke_api_token, which audits it"}
                )
        super().save(*args, **kwargs)


class ContentType(models.TextChoices):
    TEXT = "text", "Text"
    IMAGE = "image", "Image"
    VIDEO = "video", "Video"
    AUDIO = "audio", "Audio"
    OTHER = "other", "Other"


class Source(models.TextChoices):
    USER_REPORT = "user_report", "User report"
    TRUSTED_FLAGGER = "trusted_flagger", "Trusted flagger"
    AUTOMATED = "automated", "Automated detection"
    OWN_INITIATIVE = "own_initiative", "Own initiative"


class Item(models.Model):
    """A piece of content as the platform sent it, under the policy version in force."""

    # Indexed through the (platform, external_id) unique constraint.
    platform = models.ForeignKey(
        Platform, on_delete=models.PROTECT, related_name="items", db_index=False
    )
    external_id = models.CharField(max_length=200)
    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    content = models.TextField()
    content_type = models.CharField(max_length=5, choices=ContentType, default=ContentType.TEXT)
    author_id = models.CharField(max_length=200, blank=True)
    reporter_id = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=16, choices=Source, default=Source.USER_REPORT)
    flagged_at = models.DateTimeField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    # ISO 639-1, set by the fast tier (appeals/triage/); blank until it ran or if it can't tell.
    language = models.CharField(max_length=8, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "external_id"], name="item_external_id_unique"
            )
        ]
        indexes = [
            # "Earlier cases by this author / reporter" on the case page.
            models.Index(fields=["author_id"], name="item_author"),
            models.Index(fields=["reporter_id"], name="item_reporter"),
        ]

    def __str__(self) -> str:
        return f"{self.platform.slug}:{self.external_id}"


class Queue(models.TextChoices):
    FLAGS = "flags", "New flags"
    APPEALS = "appeals", "Appeals"
    ESCALATIONS = "escalations", "Escalations"


class QueueSetting(models.Model):
    """Per-queue options. Blind-first hides the model's draft until the reviewer has called it."""

    queue = models.CharField(max_length=12, choices=Queue, unique=True)
    blind_first = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.get_queue_display()


class Action(models.TextChoices):
    REMOVE = "remove", "Remove"
    RESTRICT = "restrict", "Restrict"
    LABEL = "label", "Label"
    NONE = "none", "No action"


class CaseQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status=Case.Status.OPEN)

    def in_queue(self, queue: str):
        return self.open().filter(queue=queue)

    def claimable(self, *, now=None):
        """Open cases nobody holds a live lease on."""
        now = now or timezone.now()
        return self.open().filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))

    def held_by(self, user, *, now=None):
        now = now or timezone.now()
        return self.open().filter(claimed_by=user, lease_expires_at__gt=now)

    def queue_order(self):
        return self.order_by("-priority", "due_at", "created_at", "id")


class Case(models.Model):
    """A unit of review work: a flag on an item, or an appeal against a decision on one."""

    class Kind(models.TextChoices):
        FLAG = "flag", "Flag"
        APPEAL = "appeal", "Appeal"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DECIDED = "decided", "Decided"

    kind = models.CharField(max_length=6, choices=Kind)
    platform = models.ForeignKey(
        Platform, on_delete=models.PROTECT, related_name="cases", db_index=False
    )
    external_id = models.CharField(max_length=200)
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="cases")
    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    queue = models.CharField(max_length=12, choices=Queue)
    status = models.CharField(max_length=7, choices=Status, default=Status.OPEN)
    priority = models.SmallIntegerField(default=0)
    due_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    # The canonical request body's hash: the same external id with another body is a conflict.
    request_sha256 = models.CharField(max_length=64)

    # The lease: who is working the case, with which token, until when.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)

    escalation_reason = models.TextField(blank=True)

    # Appeals only: the decision appealed against and the appellant's own words.
    appellant_id = models.CharField(max_length=200, blank=True)
    statement = models.TextField(blank=True)
    original_action = models.CharField(max_length=8, choices=Action, blank=True)
    original_rule_ids = models.JSONField(default=list, blank=True)
    original_decided_at = models.DateTimeField(null=True, blank=True)
    appealed_decision = models.ForeignKey(
        "Decision", null=True, blank=True, on_delete=models.PROTECT, related_name="appeals"
    )
    # Where the platform's stated original decision differs from the one recorded here (set when
    # the appeal is linked to it; see appeals/review/appeal_links.py): one sentence per difference.
    original_mismatch = models.JSONField(default=list, blank=True)

    objects = CaseQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "kind", "external_id"], name="case_external_id_unique"
            ),
            models.CheckConstraint(
                condition=Q(
                    lease_token__isnull=True, lease_expires_at__isnull=True, claimed_by__isnull=True
                )
                | Q(
                    lease_token__isnull=False,
                    lease_expires_at__isnull=False,
                    claimed_by__isnull=False,
                ),
                name="case_lease_complete_or_absent",
            ),
            models.CheckConstraint(
                condition=Q(kind="flag", statement="") | Q(kind="appeal"),
                name="case_statement_only_on_appeals",
            ),
            # At most one open appeal per item, and so per decision (appeals/review/appeal_links).
            models.UniqueConstraint(
                fields=["item"],
                condition=Q(kind="appeal", status="open"),
                name="case_one_open_appeal_per_item",
            ),
            models.UniqueConstraint(
                fields=["appealed_decision"],
                condition=Q(kind="appeal", status="open"),
                name="case_one_open_appeal_per_decision",
            ),
        ]
        indexes = [
            models.Index(
                F("queue"),
                F("priority").desc(),
                F("due_at"),
                F("created_at"),
                F("id"),
                name="case_queue_order",
                condition=Q(status="open"),
            ),
            # The dashboard's oldest-case and past-due figures, logarithmic at any backlog.
            models.Index(
                fields=["queue", "created_at"],
                name="case_open_queue_age",
                condition=Q(status="open"),
            ),
            models.Index(
                fields=["queue", "due_at"], name="case_open_queue_due", condition=Q(status="open")
            ),
            models.Index(fields=["policy_version", "status"], name="case_policy_status"),
            models.Index(fields=["claimed_by", "status"], name="case_claimed_by_status"),
        ]
        permissions = [
            ("review_flags", "Can review flagged items"),
            ("review_appeals", "Can review appeals"),
            ("review_escalations", "Can review escalations"),
            ("view_all_cases", "Can read every case and its audit trail"),
            ("export_decisions", "Can export decisions and statements of reasons"),
        ]

    def __str__(self) -> str:
        return f"Case {self.id} ({self.kind})"

    @property
    def is_appeal(self) -> bool:
        return self.kind == self.Kind.APPEAL

    def lease_is_live(self, *, now=None) -> bool:
        now = now or timezone.now()
        return self.lease_expires_at is not None and self.lease_expires_at > now

    def is_past_due(self, *, now=None) -> bool:
        return self.status == self.Status.OPEN and self.due_at < (now or timezone.now())


class CaseSkip(models.Model):
    """A reviewer passed on a case; it goes back to the queue and not to them again."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="skips")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["reviewer", "case"], name="skip_reviewer_case")]

    def __str__(self) -> str:
        return f"{self.reviewer} skipped case {self.case_id}"


class Recommendation(models.Model):
    """One request for a model draft and, once it ran, what the model said and how."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    IN_FLIGHT = (Status.PENDING, Status.RUNNING)

    case = models.ForeignKey(
        Case, on_delete=models.PROTECT, related_name="recommendations", db_index=False
    )  # see recommendation_case_latest
    status = models.CharField(max_length=7, choices=Status, default=Status.PENDING)
    failure_reason = models.CharField(max_length=40, blank=True)
    failure_detail = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    requested_at = models.DateTimeField(default=timezone.now)
    # When a task for it was last sent to the broker; the recovery sweep resends old ones.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Refreshed by the worker while the backend works on a running draft (drafts/heartbeat.py);
    # the recovery sweep takes back a run whose heartbeat went quiet, never one that is slow.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    run_token = models.UUIDField(null=True, blank=True)

    # What the model said.
    violation = models.BooleanField(null=True)
    policy_category = models.CharField(max_length=40, blank=True)
    rule_ids = models.JSONField(default=list, blank=True)
    unknown_rule_ids = models.JSONField(default=list, blank=True)
    confidence = models.CharField(max_length=10, blank=True)
    rationale = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    raw_output = models.TextField(blank=True)
    injection_signals = models.JSONField(default=list, blank=True)

    class Input(models.TextChoices):
        """What of the item the (text-only) model read: never the pixels of an image or video."""

        TEXT = "text", "The text"
        CAPTION = "caption", "The caption or alt text only"
        TRANSCRIPT = "transcript", "The transcript"
        ADDRESS = "address", "Only the media's address"

    model_saw = models.CharField(max_length=10, choices=Input, blank=True)

    # Provenance: enough to say exactly what ran, on what, and to re-render the prompt.
    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    policy_sha256 = models.CharField(max_length=64, blank=True)
    backend = models.CharField(max_length=20, blank=True)
    model_id = models.CharField(max_length=300, blank=True)
    model_revision = models.CharField(max_length=100, blank=True)
    prompt_sha256 = models.CharField(max_length=64, blank=True)
    reasoning_effort = models.CharField(max_length=6, blank=True)
    conversation_date = models.DateField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    engine_attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(status__in=["pending", "running"]),
                name="recommendation_one_in_flight_per_case",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(failure_reason=""),
                name="recommendation_failure_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["case", "-requested_at"], name="recommendation_case_latest"),
            models.Index(fields=["status", "started_at"], name="recommendation_status_started"),
        ]

    def __str__(self) -> str:
        return f"Recommendation {self.id} for case {self.case_id} ({self.status})"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def in_flight(self) -> bool:
        return self.status in self.IN_FLIGHT


class Outcome(models.TextChoices):
    VIOLATING = "violating", "Violating"
    NOT_VIOLATING = "not_violating", "Not violating"
    UPHOLD = "uphold", "Uphold the original decision"
    OVERTURN = "overturn", "Overturn the original decision"


class Decision(models.Model):
    """A person's final call on a case, with the model's recommendation kept beside it."""

    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="decision")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=13, choices=Outcome)
    action = models.CharField(max_length=8, choices=Action)
    rule_ids = models.JSONField(default=list, blank=True)
    note = models.TextField(blank=True)

    # The model's side, frozen at decision time.
    recommendation = models.ForeignKey(
        Recommendation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_outcome = models.CharField(max_length=13, choices=Outcome, blank=True)
    agrees_with_model = models.BooleanField(null=True)
    accepted_recommendation = models.BooleanField(default=False)
    # Agreement beyond the verdict (see appeals/review/agreement.py): the action the model's
    # outcome implies, whether the action and the cited rules match it, and the rules' overlap
    # (Jaccard). None where not compared: no model verdict, or no rule cited on either side.
    model_action = models.CharField(max_length=8, choices=Action, blank=True)
    action_agrees = models.BooleanField(null=True)
    rules_agree = models.BooleanField(null=True)
    rules_overlap = models.FloatField(null=True, blank=True)

    # Blind-first: the reviewer's own call before the draft was shown, if the queue hid it.
    recommendation_shown = models.BooleanField(default=True)
    blind_outcome = models.CharField(max_length=13, choices=Outcome, blank=True)
    blind_rule_ids = models.JSONField(default=list, blank=True)
    blind_agrees_with_model = models.BooleanField(null=True)
    blind_action_agrees = models.BooleanField(null=True)
    blind_rules_agree = models.BooleanField(null=True)
    blind_rules_overlap = models.FloatField(null=True, blank=True)

    claimed_at = models.DateTimeField(null=True, blank=True)

    # The earlier final decision on the same item that this one contradicts and replaces (AMO's
    # `override_of`): a chain, each decision superseded at most once (appeals/review/appeal_links).
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    # What the platform and the user were told, kept as it was said (appeals.disclosure.told):
    # exports and callbacks read these, so a later edit of the policy never rewrites them.
    notice = models.TextField(blank=True)
    policy_name = models.CharField(max_length=200, blank=True)
    appeal_window_days = models.PositiveIntegerField(null=True, blank=True)
    appeal_deadline = models.DateTimeField(null=True, blank=True)  # flags only; appeals are final
    # The policy's DSA mapping as it stood, cut down to the rules this decision cites.
    dsa_mapping = models.JSONField(default=dict, blank=True)
    # Decided together with the other members of a near-duplicate group (appeals/review/groups.py).
    near_duplicate_group = models.ForeignKey(
        "CaseGroup", null=True, blank=True, on_delete=models.PROTECT, related_name="decisions"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome="violating", action__in=["remove", "restrict", "label"])
                | Q(outcome="not_violating", action="none")
                | Q(outcome__in=["uphold", "overturn"]),
                name="decision_action_matches_outcome",
            ),
            # The rules' exact match is their overlap being whole: one is never stored without
            # the other, and an overlap is a fraction. (Each branch says NOT NULL explicitly: a
            # comparison with NULL is unknown, and a CHECK lets unknown through.)
            *(
                models.CheckConstraint(
                    condition=Q(
                        **{
                            f"{prefix}rules_overlap__isnull": True,
                            f"{prefix}rules_agree__isnull": True,
                        }
                    )
                    | Q(
                        **{
                            f"{prefix}rules_overlap__isnull": False,
                            f"{prefix}rules_agree__isnull": False,
                            f"{prefix}rules_overlap": 1.0,
                            f"{prefix}rules_agree": True,
                        }
                    )
                    | Q(
                        **{
                            f"{prefix}rules_overlap__isnull": False,
                            f"{prefix}rules_agree__isnull": False,
                            f"{prefix}rules_overlap__gte": 0.0,
                            f"{prefix}rules_overlap__lt": 1.0,
                            f"{prefix}rules_agree": False,
                        }
                    ),
                    name=f"decision_{prefix}rules_agreement_consistent",
                )
                for prefix in ("", "blind_")
            ),
        ]
        indexes = [models.Index(fields=["decided_at"], name="decision_decided_at")]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} on case {self.case_id}"


class AuditEvent(models.Model):
    """One appended line of the case's history. Nothing in the application updates or deletes one.

    Each event carries the hash of the one before it, so a changed or missing row breaks the chain.
    """

    class Kind(models.TextChoices):
        RECEIVED = "received", "Received"
        DRAFT_REQUESTED = "draft_requested", "Draft requested"
        DRAFT_STARTED = "draft_started", "Draft started"
        DRAFTED = "drafted", "Drafted"
        DRAFT_FAILED = "draft_failed", "Draft failed"
        DRAFT_RECOVERED = "draft_recovered", "Stalled draft recovered"
        DRAFT_DISCARDED = "draft_discarded", "Late draft discarded"
        DRAFTS_REQUEUED = "drafts_requeued", "Failed drafts re-queued"
        CLAIMED = "claimed", "Claimed"
        LEASE_RENEWED = "lease_renewed", "Lease renewed"
        LEASE_EXPIRED = "lease_expired", "Lease expired"
        RELEASED = "released", "Released"
        SKIPPED = "skipped", "Skipped"
        BLIND_CALL = "blind_call", "Blind call recorded"
        DECIDED = "decided", "Decided"
        ESCALATED = "escalated", "Escalated"
        APPEALED = "appealed", "Appealed"
        APPEAL_LINKED = "appeal_linked", "Linked to the decision appealed"
        EXPORTED = "exported", "Exported"
        CALLBACK_ATTEMPTED = "callback_attempted", "Callback attempted"
        CALLBACK_DELIVERED = "callback_delivered", "Callback delivered"
        CALLBACK_FAILED = "callback_failed", "Callback failed"
        TOKEN_REVOKED = "token_revoked", "API token revoked"
        EVALUATION_REQUESTED = "evaluation_requested", "Policy evaluation requested"
        # Written by the workbench before every publish path wrote POLICY_VERSION_PUBLISHED; kept
        # so older logs still read.
        POLICY_PUBLISHED = "policy_published", "Policy version published"
        PUBLISH_GATE_OVERRIDDEN = "publish_gate_overridden", "Publish gate overridden"
        CALLBACK_RETRY_REQUESTED = "callback_retry", "Callback retry requested"
        POLICY_CHANGED = "policy_changed", "Policy settings changed"
        POLICY_VERSION_ADDED = "policy_version_added", "Policy version added"
        POLICY_VERSION_PUBLISHED = "policy_version_published", "Policy version published"
        POLICY_DRAFT_EDITED = "policy_draft_edited", "Policy draft edited"
        RECORDS_ADOPTED = "records_adopted", "Unrecorded rows adopted into the chain"
        TRIAGED = "triaged", "Fast tier scored"
        GROUPED = "grouped", "Joined a near-duplicate group"
        GROUP_CONFIRMED = "group_confirmed", "Near-duplicate group confirmed"
        GROUP_MEMBER_REMOVED = "group_member_removed", "Removed from a near-duplicate group"

    class Source(models.TextChoices):
        """Through what the event came: the channel, where `actor_label` says who."""

        CONSOLE = "console", "Review console"
        API = "api", "API token"
        WORKER = "worker", "Celery worker"
        COMMAND = "command", "Management command"
        ADMIN = "admin", "Admin site"

    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )  # see audit_case_id
    kind = models.CharField(max_length=24, choices=Kind)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    # Who or what acted, in words: a username, "api:<platform>", "worker", "system".
    actor_label = models.CharField(max_length=200)
    # Blank only on events recorded before sources were kept (their hash does not cover it).
    source = models.CharField(max_length=8, choices=Source, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["case", "id"], name="audit_case_id")]
        constraints = [models.UniqueConstraint(fields=["hash"], name="audit_hash_unique")]
        permissions = [("view_audit", "Can read and verify the audit log")]

    def __str__(self) -> str:
        return f"{self.kind} on case {self.case_id} by {self.actor_label}"


class MediaAsset(models.Model):
    """Our copy of an item's image or video and its blurred preview (see appeals/media/).

    The platform's address is kept for the record and for fetching; pages show only `source_host`.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be fetched"
        STORED = "stored", "Stored"
        FAILED = "failed", "Could not be stored"

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"

    item = models.OneToOneField(Item, on_delete=models.PROTECT, related_name="media_asset")
    status = models.CharField(max_length=8, choices=Status, default=Status.PENDING)
    source_url = models.TextField()  # a platform URL or a data: URL that came with the intake
    source_host = models.CharField(max_length=255, blank=True)
    kind = models.CharField(max_length=5, choices=Kind, blank=True)
    mime = models.CharField(max_length=40, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # Names in settings.STORAGES["media"] (any Django storage backend; never served directly).
    original = models.CharField(max_length=300, blank=True)
    preview = models.CharField(max_length=300, blank=True)
    failure_reason = models.CharField(max_length=32, blank=True)
    failure = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    stored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="stored") | (~Q(original="") & ~Q(preview="")),
                name="media_stored_has_files",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind or 'media'} of {self.item_id} ({self.status})"


class CallbackDeliveryQuerySet(models.QuerySet):
    def undelivered(self):
        """Callbacks that have failed at least once or been given up: what a senior looks at."""
        return self.exclude(status=CallbackDelivery.Status.DELIVERED).filter(
            Q(status=CallbackDelivery.Status.FAILED) | Q(attempts__gt=0)
        )


class CallbackDelivery(models.Model):
    """The outbox row of a decision's callback, written in the decision's own transaction.

    The platform is told from this row (appeals/disclosure/outbox.py): a worker claims it with a
    conditional UPDATE, posts, and records the outcome; a periodic sweep delivers whatever is
    due, so a broker that was down at decision time, a dead worker or a platform that was down
    loses nothing. Each attempt is also an audit event on the case.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be delivered"
        DELIVERING = "delivering", "Being delivered"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Given up"

    decision = models.OneToOneField(
        Decision, on_delete=models.PROTECT, related_name="callback_delivery"
    )
    status = models.CharField(max_length=10, choices=Status, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # Give up once `attempts` reaches this; "retry now" raises it for another round.
    attempt_limit = models.PositiveIntegerField(default=9)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # A claim lapses at this time, so a worker that died mid-delivery does not hold the row.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = CallbackDeliveryQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="callback_due",
                condition=Q(status__in=["pending", "delivering"]),
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="delivering") | Q(claimed_until__isnull=False),
                name="callback_delivering_is_claimed",
            ),
            models.CheckConstraint(
                condition=~Q(status="delivered") | Q(delivered_at__isnull=False),
                name="callback_delivered_has_time",
            ),
        ]
        permissions = [("retry_callback", "Can see undelivered callbacks and retry them")]

    def __str__(self) -> str:
        return f"callback of decision {self.decision_id} ({self.status})"


class SignalKind(models.TextChoices):
    OFFENSIVE = "offensive", "Offensive language"
    LANGUAGE = "language", "Language"
    NUDITY = "nudity", "Nudity"
    NSFW = "nsfw", "NSFW image"  # a transformers image classifier (TRIAGE_IMAGE_MODEL)


class Signal(models.Model):
    """What one fast-tier model (appeals/triage/) said about an item, and which model said it.

    One row per item and kind; a re-run replaces it. `score` is the model's probability (0–1) for
    the kind; `label` its answer (a language code, or the top nudity label); `details` the rest
    (nudity: every detection with its label, score and box [x, y, width, height])."""

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="signals")
    kind = models.CharField(max_length=10, choices=SignalKind)
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=40)
    score = models.FloatField(null=True, blank=True)
    label = models.CharField(max_length=40, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "kind"], name="signal_item_kind_unique"),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__gte=0, score__lte=1),
                name="signal_score_is_probability",
            ),
        ]
        indexes = [models.Index(fields=["kind", "score"], name="signal_kind_score")]

    def __str__(self) -> str:
        return f"{self.kind} of item {self.item_id}: {self.label or self.score}"


class PriorityRule(models.Model):
    """A per-queue rule applied when a fast-tier signal lands: a case whose signal scores at or
    above `min_score` (from `source`, if one is named) is raised to `priority` and/or made due
    within `due_within` of the signal. Rules only ever raise priority or bring the due date
    forward; they never lower or delay."""

    queue = models.CharField(max_length=12, choices=Queue)
    kind = models.CharField(max_length=10, choices=SignalKind, default=SignalKind.OFFENSIVE)
    min_score = models.FloatField()
    source = models.CharField(
        max_length=16, choices=Source, blank=True, help_text="Only items from this source."
    )
    priority = models.SmallIntegerField(null=True, blank=True)
    due_within = models.DurationField(null=True, blank=True)
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(min_score__gte=0, min_score__lte=1), name="priority_rule_score_range"
            ),
            models.CheckConstraint(
                condition=Q(priority__isnull=False) | Q(due_within__isnull=False),
                name="priority_rule_has_effect",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_queue_display()}: {self.kind} ≥ {self.min_score}"


class DeepCheck(models.TextChoices):
    ALL = "all", "Every case"
    ABOVE_THRESHOLD = "above_threshold", "Only cases the fast tier scores at or above a threshold"


class DeepCheckSetting(models.Model):
    """Which of a policy's cases get a safeguard draft (the deep check). Without a row: all."""

    policy = models.OneToOneField(
        "policies.Policy", on_delete=models.CASCADE, related_name="deep_check"
    )
    mode = models.CharField(max_length=16, choices=DeepCheck, default=DeepCheck.ALL)
    threshold = models.FloatField(
        default=0.5, help_text="The fast tier's offensive-language or nudity score (0–1)."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gte=0, threshold__lte=1), name="deep_check_threshold_range"
            )
        ]

    def __str__(self) -> str:
        return f"{self.policy}: {self.get_mode_display()}"


class SecondOpinion(models.Model):
    """What one second-opinion model (policies/second_opinion/, configured per policy by a
    SecondOpinionSetting) said about a case's content, beside the safeguard draft.

    One row per case and setting, written once by the task (appeals/second_opinions/): a verdict,
    or the named reason there is none. The model's name is kept here, as it was asked."""

    class Verdict(models.TextChoices):
        VIOLATING = "violating", "Violating"
        NOT_VIOLATING = "not_violating", "Not violating"
        UNCERTAIN = "uncertain", "Uncertain"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="second_opinions")
    setting = models.ForeignKey(
        "policies.SecondOpinionSetting", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    adapter = models.CharField(max_length=16)
    model_name = models.CharField(max_length=200)
    verdict = models.CharField(max_length=13, choices=Verdict, blank=True)
    categories = models.JSONField(default=list, blank=True)
    rule_ids = models.JSONField(default=list, blank=True)  # mapped, and rules of the case's version
    raw_answer = models.TextField(blank=True)
    failure_reason = models.CharField(max_length=20, blank=True)
    failure_detail = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case", "setting"], name="second_opinion_once_per_case_and_setting"
            ),
            models.CheckConstraint(
                condition=(Q(verdict="") & ~Q(failure_reason=""))
                | (~Q(verdict="") & Q(failure_reason="")),
                name="second_opinion_verdict_or_failure",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.adapter} on case {self.case_id}: {self.verdict or self.failure_reason}"


class CaseGroup(models.Model):
    """Open cases of one queue, kind and policy version whose content is near-identical
    (found by appeals/groups/), to be confirmed by a reviewer and decided once: each member still
    gets its own Decision (appeals/review/groups.py)."""

    class Status(models.TextChoices):
        OPEN = "open", "Awaiting confirmation"
        CONFIRMED = "confirmed", "Confirmed"
        DECIDED = "decided", "Decided"

    class Basis(models.TextChoices):
        TEXT = "text", "Near-identical text"
        IMAGE = "image", "Near-identical image"

    queue = models.CharField(max_length=12, choices=Queue)
    kind = models.CharField(max_length=6, choices=Case.Kind)
    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    basis = models.CharField(max_length=5, choices=Basis)
    status = models.CharField(max_length=9, choices=Status, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="confirmed")
                | Q(confirmed_by__isnull=False, confirmed_at__isnull=False),
                name="case_group_confirmed_has_who",
            ),
            models.CheckConstraint(
                condition=~Q(status="decided")
                | Q(decided_by__isnull=False, decided_at__isnull=False),
                name="case_group_decided_has_who",
            ),
        ]
        indexes = [models.Index(fields=["queue", "status"], name="case_group_queue_status")]

    def __str__(self) -> str:
        return f"Group {self.id} ({self.get_basis_display().lower()})"


class GroupMemberQuerySet(models.QuerySet):
    def active(self):
        return self.filter(removed_at__isnull=True)


class GroupMember(models.Model):
    """A case in a near-duplicate group. Removing it keeps the row (who, when, why): a removed
    case is decided on its own and never grouped again automatically."""

    group = models.ForeignKey(CaseGroup, on_delete=models.PROTECT, related_name="members")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="group_memberships")
    joined_at = models.DateTimeField(default=timezone.now)
    similarity = models.FloatField(help_text="Text: Jaccard of shingles; image: 1 - bits/64.")
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    removal_reason = models.TextField(blank=True)

    objects = GroupMemberQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["case"],
                condition=Q(removed_at__isnull=True),
                name="group_member_one_active_group",
            ),
            models.CheckConstraint(
                condition=Q(removed_at__isnull=True) | Q(removed_by__isnull=False),
                name="group_member_removed_has_who",
            ),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id} in group {self.group_id}"


class ItemFingerprint(models.Model):
    """An item's near-duplicate fingerprint (appeals/groups/): the LSH band keys of its text's
    MinHash, or of its stored image's perceptual hash, are rows of FingerprintBand, so candidates
    are found by an indexed lookup in the database on PostgreSQL and SQLite alike."""

    item = models.OneToOneField(Item, on_delete=models.PROTECT, related_name="fingerprint")
    basis = models.CharField(max_length=5, choices=CaseGroup.Basis, blank=True)  # blank: none
    scheme = models.CharField(max_length=40)  # the parameters the band keys were made with
    image_hash = models.CharField(max_length=16, blank=True)  # pHash, 64 bits in hex
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"fingerprint of item {self.item_id}"


class FingerprintBand(models.Model):
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="+", db_index=False)
    key = models.CharField(max_length=24)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "key"], name="fingerprint_band_unique")
        ]
        indexes = [models.Index(fields=["key"], name="fingerprint_band_key")]

    def __str__(self) -> str:
        return f"band {self.key} of item {self.item_id}"


class Embedding(models.Model):
    """An item's text as a vector (appeals/precedents/), with the model that made it.

    One row per item and model version: a new model version writes new rows beside the old ones,
    and the precedent index reads only the current model's. `vector` holds `dims` numbers of
    type `dtype` ("f16" or "f32", little-endian), L2-normalised. The index built from these rows
    is a cache; these rows and the decisions are the truth."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="embeddings")
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=40)
    dtype = models.CharField(max_length=3, default="f16")
    dims = models.PositiveSmallIntegerField()
    vector = models.BinaryField()
    text_sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "model_name", "model_version"], name="embedding_item_model_unique"
            ),
            models.CheckConstraint(
                condition=Q(dtype__in=["f16", "f32"]), name="embedding_dtype_known"
            ),
        ]
        indexes = [
            models.Index(fields=["model_name", "model_version", "id"], name="embedding_model_id")
        ]

    def __str__(self) -> str:
        return f"embedding of item {self.item_id} ({self.model_name} {self.model_version})"
