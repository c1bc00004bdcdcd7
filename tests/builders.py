"""Small builders that set up state through the services, as casework would."""

from __future__ import annotations

import datetime as dt
import itertools

from django.contrib.auth import get_user_model
from django.utils import timezone

from appeals.intake import services as intake
from appeals.intake.schemas import AppealIn, ItemIn
from appeals.models import Platform
from appeals.review import decisions, queueing
from appeals.review.roles import assign_role
from policies.services import import_policy_version

POLICY_TEXT = """# Spam Policy (#SP)

Classify each example as VALID (no spam) or INVALID (spam).

## Allowed (SP0 - not spam)
SP0.a Useful request - "How do I upload a photo?"
SP0.b Personal message - "Hi Sam, here is the report."

## Likely spam (SP2 - unsolicited promotion)
SP2.a Cold promotion - "Check out my course: shopcoach.biz"
SP2.b Irrelevant ads - "Buy gold rings here!"

## Deceptive spam (SP3 - high confidence)
SP3.a Fake giveaways - "You won an iPhone, click here"
"""

_counter = itertools.count(1)


def make_user(username: str, *roles: str):
    user = get_user_model().objects.create_user(username=username, password="correct horse battery")
    for role in roles:
        assign_role(user, role)
    return user


def make_platform(slug: str = "acme") -> Platform:
    platform, _ = Platform.objects.get_or_create(slug=slug, defaults={"name": slug.title()})
    return platform


def make_policy(slug: str = "spam", text: str = POLICY_TEXT, name: str = "Spam"):
    return import_policy_version(slug=slug, name=name, text=text)


def flag(
    platform: Platform,
    *,
    content: str = "Buy gold rings here!",
    policy: str = "spam",
    external_id: str | None = None,
    **fields,
):
    payload = ItemIn(
        external_id=external_id or f"item-{next(_counter)}",
        policy=policy,
        content=content,
        **fields,
    )
    return intake.receive_item(platform=platform, payload=payload).case


def appeal(
    platform: Platform,
    *,
    item_external_id: str,
    external_id: str | None = None,
    statement: str = "This was not spam, it was my own shop.",
    outcome: str = "remove",
    rule_ids=("SP2.b",),
    decided_at: dt.datetime | None = None,
    **fields,
):
    payload = AppealIn(
        external_id=external_id or f"appeal-{next(_counter)}",
        item_external_id=item_external_id,
        statement=statement,
        original_decision={
            "outcome": outcome,
            "rule_ids": list(rule_ids),
            "decided_at": decided_at or timezone.now() - dt.timedelta(days=1),
        },
        **fields,
    )
    return intake.receive_appeal(platform=platform, payload=payload).case


def decide(
    reviewer,
    case,
    outcome,
    action="",
    rule_ids=(),
    *,
    blind_call=None,
    blind_rule_ids=(),
    **decision,
):
    """Claim `case` as `reviewer` and decide it; `blind_call` (with `blind_rule_ids`) records
    their own call first."""
    claimed = queueing.claim_case(reviewer=reviewer, case_id=case.id)
    if blind_call:
        decisions.record_blind_call(
            reviewer=reviewer,
            case_id=case.id,
            lease_token=claimed.lease_token,
            outcome=blind_call,
            rule_ids=blind_rule_ids,
        )
    return decisions.decide_case(
        reviewer=reviewer,
        case_id=case.id,
        lease_token=claimed.lease_token,
        outcome=outcome,
        action=action,
        rule_ids=rule_ids,
        **decision,
    )
