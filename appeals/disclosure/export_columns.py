"""The columns of the decision-audit export and how CSV writes them.

What belongs here: the table of columns (`COLUMN_TABLE`: each column's name and how CSV writes
it), the CSV cells of a row (`_csv_cells`, `_csv_tail`, `neutralise`), the pseudonyms that stand
for people's ids (`Pseudonymiser`) and the bounded caches of the export (`_remember`). The row
itself, the value of each column from one tuple of the row query, is built in `export_cells`.

A new column is one entry in `COLUMN_TABLE`, the field it needs in `export_rows._FIELDS` (if the
query does not read it yet) and its value in `export_cells._row`, in the same place.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from dataclasses import dataclass

from django.conf import settings

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


# The output columns, in order: the CSV header, the JSON keys, the order `export_cells._row`
# returns.
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
    # Decided once for a near-duplicate group (appeals/review/groups.py): the group's id.
    Column("near_duplicate_group_id"),
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


_FLAG_COLUMNS = tuple(i for i, column in enumerate(COLUMN_TABLE) if column.csv == FLAG)
_RULE_COLUMNS = tuple(i for i, column in enumerate(COLUMN_TABLE) if column.csv == RULES)
_TEXT_COLUMNS = tuple(i for i, column in enumerate(COLUMN_TABLE) if column.csv in (TEXT, RULES))
_NOTICE = COLUMNS.index("notice")
assert COLUMN_TABLE[-1].csv == NOTICE  # `_csv_tail` writes it at the end of the line


def _csv_cells(row: list) -> list:
    """A row (from `export_cells._row`, changed in place) as CSV cells, but for the notice, the last column:
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
