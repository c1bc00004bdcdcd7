"""The columns of the decision-audit export: one table of what each column is and how CSV
writes it, and the row (`_row`) built from one tuple of the row query (`export_rows`).

A new column is one entry in `COLUMN_TABLE`, the field it needs in `export_rows._FIELDS` (if the
query does not read it yet) and its value in `_row`, in the same place.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model

from appeals.models import Platform
from policies.models import PolicyVersion

from .export_rows import ExportFilters
from .notices import NoticeFacts, RuleLines, compose_notice

# How CSV writes a column (`_csv_cells`). Columns with none are written as they are: numbers,
# times (ISO text from the database), enum values and hashes, none of which can start a formula.
FLAG = "flag"  # true / false
RULES = "rules"  # rule ids, space-separated, made inert (they come from outside)
TEXT = "text"  # text from outside (platform ids and names, the model's fields): made inert
NOTICE = "notice"  # the notice to the user: long and repeated, quoted once (`_csv_tail`)


@dataclass(frozen=True)
class Column:
    name: str
    csv: str | None = None


# The output columns, in order: the CSV header, the JSON keys, the order `_row` returns.
COLUMN_TABLE = (
    Column("decision_id"),
    Column("case_id"),
    Column("case_kind"),
    Column("source"),
    Column("platform", TEXT),
    Column("case_external_id", TEXT),
    Column("item_external_id", TEXT),
    Column("content_type"),
    Column("policy", TEXT),
    Column("policy_version"),
    Column("author_id", TEXT),
    Column("reporter_id", TEXT),
    Column("appellant_id", TEXT),
    Column("received_at"),
    Column("flagged_at"),
    Column("due_at"),
    Column("claimed_at"),
    Column("decided_at"),
    Column("received_to_decided_seconds"),
    Column("claimed_to_decided_seconds"),
    Column("decided_late", FLAG),
    Column("outcome"),
    Column("action"),
    Column("rule_ids", RULES),
    Column("reviewer", TEXT),
    Column("recommendation_id"),
    Column("model_verdict"),
    Column("model_outcome"),
    Column("model_rule_ids", RULES),
    Column("model_confidence", TEXT),
    Column("model_backend", TEXT),
    Column("model_id", TEXT),
    Column("model_revision", TEXT),
    Column("model_policy_version"),
    Column("model_policy_sha256"),
    Column("prompt_sha256"),
    Column("reasoning_effort"),
    Column("model_saw"),  # text | caption | transcript | address: never an image's pixels
    Column("agrees_with_model", FLAG),
    Column("accepted_recommendation", FLAG),
    Column("recommendation_shown", FLAG),
    Column("original_action"),
    Column("appealed_decision_id"),
    Column("appeal_outcome"),
    Column("appeal_decided_at"),
    # Agreement on three levels (appeals/review/agreement.py): verdict is `agrees_with_model`.
    Column("model_action"),
    Column("action_agrees", FLAG),
    Column("rules_agree", FLAG),
    Column("rules_overlap"),
    Column("blind_outcome"),
    Column("blind_agrees_with_model", FLAG),
    Column("blind_action_agrees", FLAG),
    Column("blind_rules_agree", FLAG),
    Column("blind_rules_overlap"),
    # Appeal links (issue 11.3): the decision this one supersedes, the one that superseded it,
    # and where an appeal's stated original decision differs from the recorded one.
    Column("supersedes_decision_id"),
    Column("superseded_by_decision_id"),
    Column("original_mismatch", TEXT),
    # The fast tier (appeals/triage/): language, and each score with the model that gave it.
    Column("language"),
    Column("offensive_score"),
    Column("offensive_model", TEXT),
    Column("nudity_score"),
    Column("nudity_label"),
    Column("nudity_model", TEXT),
    Column("notice", NOTICE),  # last: `_csv_tail` writes it at the end of the line
)
COLUMNS = tuple(column.name for column in COLUMN_TABLE)

# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_CHARS = frozenset("=+-@\t\r")


def _remember(cache: dict, key, value, *, limit: int):
    """`cache[key] = value`, emptying the cache first once it holds `limit` entries: the export's
    caches (decoded rule ids, notices, pseudonyms) stay bounded however varied the rows."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


class Pseudonymiser:
    """Stable pseudonyms: HMAC-SHA256 under a key derived from EXPORT_PSEUDONYM_KEY (or
    SECRET_KEY), truncated. The same id gets the same pseudonym in every export made with the
    same key, so rows can be linked across exports without revealing who anyone is."""

    LENGTH = 16  # hex characters: 64 bits, ample against collisions among a platform's users

    def __init__(self, key: str | None = None) -> None:
        secret = key or getattr(settings, "EXPORT_PSEUDONYM_KEY", "") or settings.SECRET_KEY
        # Derive a key of our own, so the raw SECRET_KEY is never used for anything else.
        self._key = hmac.new(
            secret.encode(), b"appeals-export-pseudonym-v1", hashlib.sha256
        ).digest()
        self._cache: dict[str, str] = {}

    def _pseudonym(self, namespace: str, value: str, prefix: str) -> str:
        if not value:
            return ""
        token = f"{namespace}\x1f{value}"
        cached = self._cache.get(token)
        if cached is None:
            digest = hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()
            cached = _remember(
                self._cache, token, f"{prefix}{digest[: self.LENGTH]}", limit=100_000
            )
        return cached

    def platform_user(self, platform: str, user_id: str) -> str:
        # Authors, reporters and appellants share one namespace per platform, so the author of
        # an item and the appellant against its removal get the same pseudonym.
        return self._pseudonym(f"platform:{platform}", user_id, "u_")

    def reviewer(self, username: str) -> str:
        return self._pseudonym("reviewer", username, "r_")


def neutralise(cell: str) -> str:
    """Make a text cell inert in spreadsheets: a leading quote stops formula evaluation."""
    if cell and cell[0] in _FORMULA_CHARS:
        return "'" + cell
    return cell


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


_FLAG_COLUMNS = tuple(i for i, column in enumerate(COLUMN_TABLE) if column.csv == FLAG)
_RULE_COLUMNS = tuple(i for i, column in enumerate(COLUMN_TABLE) if column.csv == RULES)
_TEXT_COLUMNS = tuple(i for i, column in enumerate(COLUMN_TABLE) if column.csv in (TEXT, RULES))
_NOTICE = COLUMNS.index("notice")
assert COLUMN_TABLE[-1].csv == NOTICE  # `_csv_tail` writes it at the end of the line


def _csv_cells(row: list) -> list:
    """A row (from `_row`, changed in place) as CSV cells, but for the notice, the last column:
    true/false, space-separated rule ids, and text a spreadsheet would run as a formula made
    inert. `csv.writer` writes None as an empty cell."""
    for i in _FLAG_COLUMNS:
        if (flag := row[i]) is not None:
            row[i] = "true" if flag else "false"
    for i in _RULE_COLUMNS:
        row[i] = " ".join(row[i])
    for i in _TEXT_COLUMNS:
        if (text := row[i]) and text[0] in _FORMULA_CHARS:  # `neutralise`, inlined: hot loop
            row[i] = "'" + text
    del row[_NOTICE]
    return row


def _csv_tail(notice: str) -> str:
    """The end of a CSV line: a comma, the notice as a CSV cell, the line terminator.

    Notices are long (most of an export's bytes), multi-line, and repeat row after row, so
    `csv.writer` quotes each distinct one once, here, and `Export._csv` reuses the text.
    """
    buffer = io.StringIO()
    csv.writer(buffer).writerow(("", neutralise(notice)))
    return buffer.getvalue()
