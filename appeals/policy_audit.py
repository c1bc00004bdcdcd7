"""Policy changes in the audit log: receivers for `policies.signals`, connected at start-up.

`policies` cannot import `appeals`, so its services announce each change (inside their
transaction) and these receivers append the event, with the content hashes of the rows written
(`appeals.record_hashes`). A change of a policy's settings names each field with its old and
new value.
"""

from __future__ import annotations

from policies.models import PolicyRule
from policies.signals import (
    policy_draft_edited,
    policy_settings_changed,
    policy_version_added,
    policy_version_published,
)

from .audit import record_event
from .models import AuditEvent
from .record_hashes import deleted_rows

Kind = AuditEvent.Kind


def _source(via: str) -> AuditEvent.Source:
    try:
        return AuditEvent.Source(via)
    except ValueError:
        raise ValueError(
            f"policy change via {via!r}: say one of {', '.join(AuditEvent.Source.values)}"
        ) from None


def on_settings_changed(sender, *, policy, created, changes, actor, via, **kwargs) -> None:
    record_event(
        Kind.POLICY_CHANGED,
        case=None,
        actor=actor,
        source=_source(via),
        data={
            "policy_id": policy.id,
            "policy": policy.slug,
            "created": created,
            "changes": {field: {"from": old, "to": new} for field, (old, new) in changes.items()},
        },
        records=(policy,),
    )


def _version_event(kind, version, *, actor, via, data: dict | None = None) -> None:
    """A version's event with the hashes of its row and its rules, as the transaction left them."""
    rules = list(version.rules.all())
    record_event(
        kind,
        case=None,
        actor=actor,
        source=_source(via),
        data={
            "policy_id": version.policy_id,
            "policy_version_id": version.id,
            "number": version.number,
            "sha256": version.sha256,
            "rules": len(rules),
            **(data or {}),
        },
        records=(version, *rules),
    )


def on_version_added(sender, *, version, actor, via, **kwargs) -> None:
    _version_event(
        Kind.POLICY_VERSION_ADDED, version, actor=actor, via=via, data={"status": version.status}
    )


def on_version_published(sender, *, version, actor, via, **kwargs) -> None:
    record_event(
        Kind.POLICY_VERSION_PUBLISHED,
        case=None,
        actor=actor,
        source=_source(via),
        data={"policy_id": version.policy_id, "policy_version_id": version.id},
        records=(version,),
    )


def on_draft_edited(sender, *, version, removed_rule_ids, actor, via, **kwargs) -> None:
    # The draft's old rule rows are gone: said in the event, so the records check expects it.
    _version_event(
        Kind.POLICY_DRAFT_EDITED,
        version,
        actor=actor,
        via=via,
        data={"row_hashes": deleted_rows(PolicyRule, removed_rule_ids)},
    )


def connect() -> None:
    policy_settings_changed.connect(on_settings_changed, dispatch_uid="appeals.policy_changed")
    policy_version_added.connect(on_version_added, dispatch_uid="appeals.policy_version_added")
    policy_version_published.connect(
        on_version_published, dispatch_uid="appeals.policy_version_published"
    )
    policy_draft_edited.connect(on_draft_edited, dispatch_uid="appeals.policy_draft_edited")
