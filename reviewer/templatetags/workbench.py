"""Template tags for the workbench's pieces on other pages (the case page's "add to golden set")."""

from __future__ import annotations

from django import template

from policies.workbench.models import GoldenSet

register = template.Library()


@register.simple_tag
def golden_sets_for(case):
    """The curated golden sets of the policy the case was decided under."""
    return list(
        GoldenSet.objects.filter(
            policy_id=case.policy_version.policy_id, kind=GoldenSet.Kind.CURATED
        ).order_by("name")
    )
