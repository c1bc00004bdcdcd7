"""The four roles, as Django groups with permissions. `manage.py bootstrap_roles` applies them."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "reviewer": ("appeals.review_flags",),
    "senior_reviewer": (
        "appeals.review_flags",
        "appeals.review_appeals",
        "appeals.review_escalations",
        "appeals.view_all_cases",
        "appeals.view_audit",
        "policies.override_publish_gate",
        "appeals.retry_callback",
    ),
    "policy_admin": (
        "policies.manage_policy",
        "policies.add_policy",
        "policies.change_policy",
        "policies.view_policy",
        "policies.view_policyversion",
        "policies.view_policyrule",
        "policies.add_secondopinionsetting",
        "policies.change_secondopinionsetting",
        "policies.view_secondopinionsetting",
    ),
    "auditor": (
        "appeals.view_all_cases",
        "appeals.view_audit",
        "appeals.export_decisions",
    ),
}
ROLES = tuple(ROLE_PERMISSIONS)


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@transaction.atomic
def bootstrap_roles() -> dict[str, Group]:
    """Create or update each role's group so it has exactly its permissions."""
    groups = {}
    for role, permissions in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([_permission(p) for p in permissions])
        groups[role] = group
    return groups


@transaction.atomic
def assign_role(user, role: str) -> None:
    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    group = Group.objects.filter(name=role).first() or bootstrap_roles()[role]
    user.groups.add(group)
    if role == "policy_admin" and not user.is_staff:
        user.is_staff = True  # policy admins edit policies in the admin site
        user.save(update_fields=["is_staff"])
