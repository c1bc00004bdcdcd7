"""Creating policies and their versions. A version is never edited: a change is a new version."""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from .models import Policy, PolicyRule, PolicyVersion
from .safeguard.rules import extract_rules

MAX_POLICY_CHARS = 200_000


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
) -> PolicyVersion:
    """Add a new numbered version of the policy `slug` (creating the policy if it is new)."""
    rules = check_policy_text(text)
    policy, created = Policy.objects.select_for_update().get_or_create(
        slug=slug, defaults={"name": name}
    )
    if not created and name and policy.name != name:
        policy.name = name
        policy.save(update_fields=["name"])
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    latest = policy.versions.order_by("-number").first()
    if latest is not None and latest.sha256 == sha256:
        return latest
    number = (policy.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = PolicyVersion.objects.create(
        policy=policy,
        number=number,
        text=text,
        sha256=sha256,
        status=PolicyVersion.Status.PUBLISHED if publish else PolicyVersion.Status.DRAFT,
        source=source,
        licence_notice=licence_notice,
        created_by=actor,
    )
    PolicyRule.objects.bulk_create(
        PolicyRule(version=version, rule_id=rule.id, text=rule.text, position=position)
        for position, rule in enumerate(rules)
    )
    return version


@transaction.atomic
def publish_policy_version(*, version: PolicyVersion) -> PolicyVersion:
    PolicyVersion.objects.filter(id=version.id).update(status=PolicyVersion.Status.PUBLISHED)
    version.refresh_from_db()
    return version
