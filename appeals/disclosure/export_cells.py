"""The row builder of the decision-audit export: one output row, its cells in `COLUMNS` order
(`export_columns`), from one tuple of the row query (`export_rows`).

What belongs here: `_row` and the per-cell values it computes (the appeal, the notice as told,
pseudonymised ids, model and blind agreement, the fast tier's cells), and what it looks up on
the way (`_Context`: platform slugs, policy versions and reviewer names, decoded rule-id lists,
composed notices, each cached). How a column is written to CSV belongs in `export_columns`.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model

from appeals.models import Platform
from policies.models import PolicyVersion

from .export_columns import Pseudonymiser, _remember
from .export_rows import ExportFilters
from .notices import NoticeFacts, RuleLines, compose_notice


@dataclass(frozen=True)
class _Version:
    number: int
    policy_id: int
    slug: str
    name: str
    appeal_window_days: int


class _Lookups:
    """Platform slugs, policy versions and reviewer names by id: one query each, then cached."""

    def __init__(self) -> None:
        self._platforms: dict[int, str] = {}
        self._versions: dict[int, _Version] = {}
        self._users: dict[int, str] = {}

    def platform(self, platform_id: int) -> str:
        slug = self._platforms.get(platform_id)
        if slug is None:
            slug = Platform.objects.values_list("slug", flat=True).get(id=platform_id)
            self._platforms[platform_id] = slug
        return slug

    def version(self, version_id: int) -> _Version:
        version = self._versions.get(version_id)
        if version is None:
            version = _Version(
                *PolicyVersion.objects.values_list(
                    "number",
                    "policy_id",
                    "policy__slug",
                    "policy__name",
                    "policy__appeal_window_days",
                ).get(id=version_id)
            )
            self._versions[version_id] = version
        return version

    def username(self, user_id: int) -> str:
        name = self._users.get(user_id)
        if name is None:
            name = get_user_model().objects.values_list("username", flat=True).get(id=user_id)
            self._users[user_id] = name
        return name


@dataclass
class _Context:
    filters: ExportFilters
    pseudonyms: Pseudonymiser | None
    rule_lines: RuleLines = field(default_factory=RuleLines)
    lookups: _Lookups = field(default_factory=_Lookups)
    notices: dict = field(default_factory=dict)
    rule_id_lists: dict = field(default_factory=dict)

    def rule_ids(self, value) -> list:
        """A rule-id list, from the row as read: a list, None, or JSON text (PostgreSQL's fast
        reader). The texts repeat endlessly ('[]', '["SP2.b"]'), so each is decoded once; the
        lists are shared between rows, and nothing downstream changes them."""
        if value is None:
            return []
        if value.__class__ is not str:
            return value
        decoded = self.rule_id_lists.get(value)
        if decoded is None:
            decoded = _remember(self.rule_id_lists, value, json.loads(value), limit=10_000)
        return decoded


def _row(raw: tuple, ctx: _Context) -> list:
    """One output row (in COLUMNS order) from one `_FIELDS` tuple and its appeal."""
    (
        decision_id,
        case_id,
        kind,
        source,
        platform_id,
        case_external_id,
        item_external_id,
        content_type,
        version_id,
        author_id,
        reporter_id,
        appellant_id,
        received_at,
        flagged_at,
        due_at,
        claimed_at,
        decided_at,
        received_to_decided,
        claimed_to_decided,
        decided_late,
        outcome,
        action,
        rule_ids,
        reviewer_id,
        recommendation_id,
        violation,
        model_outcome,
        model_rule_ids,
        confidence,
        backend,
        model_id,
        model_revision,
        model_version_id,
        model_policy_sha256,
        prompt_sha256,
        effort,
        model_saw,
        agrees,
        accepted,
        shown,
        original_action,
        original_decided_at,
        appealed_decision_id,
        appeal,
        model_action,
        action_agrees,
        rules_agree,
        rules_overlap,
        blind_outcome,
        blind_agrees,
        blind_action_agrees,
        blind_rules_agree,
        blind_rules_overlap,
        supersedes_id,
        superseded_by_id,
        mismatch,
        stored_notice,
        _told_policy_name,
        _told_dsa_mapping,
        language,
        fast_offensive,
        fast_nudity,
        group_id,
    ) = raw  # the times are ISO text in UTC (`IsoTime`)
    lookups = ctx.lookups
    appeal_outcome = appeal_decided_at = None
    if appeal is not None:  # few decisions are appealed
        if appeal.__class__ is str:  # PostgreSQL's fast reader leaves JSON as text
            appeal = json.loads(appeal)
        appeal_outcome, appeal_decided_at = appeal["outcome"], appeal["decided_at"]
    rule_ids = ctx.rule_ids(rule_ids)
    model_rule_ids = ctx.rule_ids(model_rule_ids)
    version = lookups.version(version_id)
    platform = lookups.platform(platform_id)
    reviewer = lookups.username(reviewer_id)

    # Notices repeat a lot (same policy, outcome, action and rules): build each text once.
    notice_key = (
        version_id,
        kind,
        outcome,
        action,
        tuple(rule_ids),
        recommendation_id is not None,
        original_action,
        original_decided_at and original_decided_at[:10],  # the day: the notice names it
        decided_at[:10],
    )
    # The notice as told, stored with the decision; composed only for a decision stored without
    # one (none since migration 0008), from the policy as it stands.
    notice = stored_notice or ctx.notices.get(notice_key)
    if notice is None:
        notice = compose_notice(
            NoticeFacts(
                case_kind=kind,
                outcome=outcome,
                action=action,
                rule_lines=ctx.rule_lines.lines(version_id, rule_ids),
                policy_name=version.name,
                appeal_window_days=version.appeal_window_days,
                decided_at=dt.datetime.fromisoformat(decided_at),
                model_assisted=recommendation_id is not None,
                original_action=original_action,
                original_decided_at=original_decided_at
                and dt.datetime.fromisoformat(original_decided_at),
            )
        )
        _remember(ctx.notices, notice_key, notice, limit=50_000)

    if ctx.pseudonyms is not None:
        author_id = ctx.pseudonyms.platform_user(platform, author_id)
        reporter_id = ctx.pseudonyms.platform_user(platform, reporter_id)
        appellant_id = ctx.pseudonyms.platform_user(platform, appellant_id)
        reviewer = ctx.pseudonyms.reviewer(reviewer)

    return [
        decision_id,
        case_id,
        kind,
        source,
        platform,
        case_external_id,
        item_external_id,
        content_type,
        version.slug,
        version.number,
        author_id,
        reporter_id,
        appellant_id,
        received_at,
        flagged_at,
        due_at,
        claimed_at,
        decided_at,
        received_to_decided,
        claimed_to_decided,
        decided_late,
        outcome,
        action,
        rule_ids,
        reviewer,
        recommendation_id,
        None if violation is None else ("violating" if violation else "not_violating"),
        model_outcome,
        model_rule_ids,
        confidence,
        backend,
        model_id,
        model_revision,
        None if model_version_id is None else lookups.version(model_version_id).number,
        model_policy_sha256,
        prompt_sha256,
        effort,
        model_saw,
        agrees,
        accepted,
        shown,
        original_action,
        appealed_decision_id,
        appeal_outcome,
        appeal_decided_at,
        model_action,
        action_agrees,
        rules_agree,
        None if rules_overlap is None else round(rules_overlap, 4),
        blind_outcome,
        blind_agrees,
        blind_action_agrees,
        blind_rules_agree,
        None if blind_rules_overlap is None else round(blind_rules_overlap, 4),
        supersedes_id,
        superseded_by_id,
        " ".join(ctx.rule_ids(mismatch)) or None,
        *_fast_tier_cells(language, fast_offensive, fast_nudity),
        group_id,
        notice,
    ]


def _fast_tier_cells(language: str, offensive, nudity) -> list:
    """language, offensive score and model, nudity score, label and model."""

    def parsed(value) -> dict:
        return (json.loads(value) if isinstance(value, str) else value) or {}

    offensive, nudity = parsed(offensive), parsed(nudity)

    def model(signal: dict) -> str:
        return f"{signal['model_name']} {signal['model_version']}" if signal else ""

    return [
        language,
        offensive.get("score"),
        model(offensive),
        nudity.get("score"),
        nudity.get("label", ""),
        model(nudity),
    ]
