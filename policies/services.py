"""Creating policies and their versions. A version is never edited: a change is a new version."""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .models import Policy, PolicyRule, PolicyVersion
from .safeguard.rules import extract_rules
from .signals import policy_settings_changed, policy_version_added, policy_version_published
from .workbench.models import GoldenSet

MAX_POLICY_CHARS = 200_000
# A policy's settings: what the admin edits, and what every change of is an audit event.
SETTINGS_FIELDS = (
    "slug",
    "name",
    "reasoning_effort",
    "appeal_window_days",
    "decide_within_hours",
    "appeal_decide_within_hours",
    "dsa_mapping",
)


def check_policy_text(text: str) -> list:
    """The rules `text` defines; a ValidationError on `text` naming the problem if it can't be a
    policy (the admin's form calls this too, so a bad text is a form error, not a 500)."""
    if not text.strip():
        raise ValidationError({"text": "the policy text is empty"})
    if len(text) > MAX_POLICY_CHARS:
        raise ValidationError({"text": f"the policy text is over {MAX_POLICY_CHARS:,} characters"})
    rules = extract_rules(text)
    if not rules:
        raise ValidationError(
            {"text": "no rule ids found: a policy must define rule ids such as GV1 or SP2.b"}
        )
    return rules


@transaction.atomic
def import_policy_version(
    *,
    slug: str,
    name: str,
    text: str,
    source: str = "",
    licence_notice: str = "",
    publish: bool = True,
    actor=None,
    via: str = "command",
) -> PolicyVersion:
    """Add a new numbered version of the policy `slug` (creating the policy if it is new).

    With `publish`, the version is published at once, which is refused for a policy whose
    publishing is gated by a golden set: such a version is imported as a draft and published from
    the workbench, through the gate."""
    rules = check_policy_text(text)
    policy, created = Policy.objects.select_for_update().get_or_create(
        slug=slug, defaults={"name": name}
    )
    if created:
        _settings_changed(policy, created=True, changes={}, actor=actor, via=via)
    elif name and policy.name != name:
        changes = {"name": [policy.name, name]}
        policy.name = name
        policy.save(update_fields=["name"])
        _settings_changed(policy, created=False, changes=changes, actor=actor, via=via)
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    latest = policy.versions.order_by("-number").first()
    if latest is not None and latest.sha256 == sha256:
        return latest
    if publish:
        _refuse_if_gated(policy)
    number = (policy.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = PolicyVersion.objects.create(
        policy=policy,
        number=number,
        text=text,
        sha256=sha256,
        status=PolicyVersion.Status.DRAFT,
        source=source,
        licence_notice=licence_notice,
        created_by=actor,
    )
    PolicyRule.objects.bulk_create(
        PolicyRule(version=version, rule_id=rule.id, text=rule.text, position=position)
        for position, rule in enumerate(rules)
    )
    policy_version_added.send(PolicyVersion, version=version, actor=actor, via=via)
    if publish:
        version = publish_policy_version(version=version, actor=actor, via=via)
    return version


def _refuse_if_gated(policy: Policy) -> None:
    gating = GoldenSet.objects.filter(policy=policy, gates_publishing=True).first()
    if gating is not None:
        raise ValidationError(
            {
                "publish": [
                    f"{policy.slug}'s publishing is gated by the golden set {gating.name!r}: "
                    "import the version as a draft, evaluate it, and publish it from the "
                    "workbench (a senior may override the gate there, with a reason)"
                ]
            }
        )


def mark_published(*, version: PolicyVersion, actor=None) -> bool:
    """draft → published, once, with when and by whom. False when it was already published.
    The one place a version's status changes; callers write the audit event."""
    return bool(
        PolicyVersion.objects.filter(id=version.id, status=PolicyVersion.Status.DRAFT).update(
            status=PolicyVersion.Status.PUBLISHED, published_at=timezone.now(), published_by=actor
        )
    )


@transaction.atomic
def publish_policy_version(
    *, version: PolicyVersion, actor=None, via: str = "command"
) -> PolicyVersion:
    published = mark_published(version=version, actor=actor)
    version.refresh_from_db()
    if published:
        policy_version_published.send(PolicyVersion, version=version, actor=actor, via=via)
    return version


def _settings_changed(policy: Policy, *, created: bool, changes: dict, actor, via: str) -> None:
    policy_settings_changed.send(
        Policy, policy=policy, created=created, changes=changes, actor=actor, via=via
    )


@transaction.atomic
def save_policy_settings(*, policy: Policy, actor=None, via: str = "command") -> Policy:
    """Save a policy's settings (a new policy, or changes to name, appeal window, times to
    decide, DSA mapping, reasoning effort) and announce what changed, old and new values.

    The caller has validated `policy` (the admin's form runs `full_clean`). A save that changes
    nothing announces nothing.
    """
    if policy.id is None:
        policy.save()
        _settings_changed(policy, created=True, changes={}, actor=actor, via=via)
        return policy
    stored = Policy.objects.select_for_update().values(*SETTINGS_FIELDS).get(id=policy.id)
    changes = {
        field: [stored[field], getattr(policy, field)]
        for field in SETTINGS_FIELDS
        if stored[field] != getattr(policy, field)
    }
    policy.save()
    if changes:
        _settings_changed(policy, created=False, changes=changes, actor=actor, via=via)
    return policy
