"""Golden sets in and out: CSV or JSONL, every bad line reported by its number, all or nothing.

Columns (CSV header) or keys (one JSON object per line):

    content        the text under review (required)
    expected       violating | not_violating (also true/false, yes/no, 1/0, invalid/valid)
    rule_ids       expected rule ids, separated by spaces, commas or semicolons (JSONL: a list)
    content_type   default "text"
    language       ISO 639-1; detected with lingua when empty
    note, source   free text
    group          a subgroup to report pass rates by (e.g. a HateCheck functionality)
    must_pass      true/false: publishing is refused while this item fails
    case_id        the case the label came from, if any

An import with any bad line writes nothing and names every bad line; line numbers count the
file's physical lines, header included, as an editor shows them.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from policies.language import detect_languages

from .models import GoldenItem, GoldenSet

MAX_ITEMS = 50_000
MAX_CONTENT_CHARS = 100_000
FIELDS = (
    "content",
    "expected",
    "rule_ids",
    "content_type",
    "language",
    "note",
    "group",
    "source",
    "must_pass",
    "case_id",
)
_TRUE = {"violating", "true", "yes", "1", "invalid", "violation", "y", "t"}
_FALSE = {"not_violating", "non_violating", "false", "no", "0", "valid", "n", "f", "ok"}
_RULE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,15}(\.[A-Za-z0-9_-]{1,15}){0,3}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")


@dataclass(frozen=True)
class ParsedItem:
    line: int
    content: str
    expected_violation: bool
    expected_rule_ids: tuple[str, ...] = ()
    content_type: str = "text"
    language: str = ""
    note: str = ""
    group: str = ""
    source: str = ""
    must_pass: bool = False
    source_case_id: int | None = None


class ImportError_(ValidationError):
    """The file had bad lines; `problems` lists them as (line, message)."""

    def __init__(self, problems: list[tuple[int, str]]):
        self.problems = problems
        shown = [f"line {line}: {message}" for line, message in problems[:50]]
        if len(problems) > 50:
            shown.append(f"… and {len(problems) - 50} more bad lines")
        super().__init__(shown)


def _bool(value, *, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{field} must be violating/not_violating (or true/false), not {value!r}")


def _rules(value) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s,;]+", value) if p]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = [v.strip() for v in value if v.strip()]
    else:
        raise ValueError(f"rule_ids must be a list of strings or a separated string, not {value!r}")
    for part in parts:
        if not _RULE_ID.match(part):
            raise ValueError(f"{part!r} is not a rule id (such as SP2 or SP2.b)")
    return tuple(dict.fromkeys(parts))


def _row_to_item(line: int, row: dict) -> ParsedItem:
    unknown = set(row) - set(FIELDS) - {"violation", "label"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    content = row.get("content")
    if not isinstance(content, str) or not content.strip():
        raise ValueError("content is empty")
    if len(content) > MAX_CONTENT_CHARS:
        raise ValueError(f"content is over {MAX_CONTENT_CHARS:,} characters")
    expected = row.get("expected", row.get("violation", row.get("label")))
    if expected is None or expected == "":
        raise ValueError("expected is missing (violating or not_violating)")
    expected_violation = _bool(expected, field="expected")
    rule_ids = _rules(row.get("rule_ids"))
    if rule_ids and not expected_violation:
        raise ValueError("rule_ids are given for an item expected not to violate")
    language = str(row.get("language") or "").strip().lower()
    if language and not _LANGUAGE.match(language):
        raise ValueError(f"language must be an ISO 639-1 code such as en, not {language!r}")
    case_id = row.get("case_id")
    if case_id in (None, ""):
        case_id = None
    else:
        try:
            case_id = int(case_id)
        except (TypeError, ValueError):
            raise ValueError(f"case_id must be a whole number, not {case_id!r}") from None
    content_type = str(row.get("content_type") or "text").strip()
    if len(content_type) > 40:
        raise ValueError("content_type is over 40 characters")
    must_pass = row.get("must_pass")
    return ParsedItem(
        line=line,
        content=content,
        expected_violation=expected_violation,
        expected_rule_ids=rule_ids,
        content_type=content_type,
        language=language,
        note=str(row.get("note") or ""),
        group=str(row.get("group") or "")[:100],
        source=str(row.get("source") or "")[:300],
        must_pass=False if must_pass in (None, "") else _bool(must_pass, field="must_pass"),
        source_case_id=case_id,
    )


def _csv_rows(text: str) -> Iterator[tuple[int, dict | Exception]]:
    reader = csv.DictReader(io.StringIO(text, newline=""), restkey="__extra__")
    if not reader.fieldnames:
        yield 1, ValueError("the file is empty (a header line naming the columns comes first)")
        return
    header = [name.strip() for name in reader.fieldnames]
    if "content" not in header:
        yield 1, ValueError(f"the header has no content column (it has: {', '.join(header)})")
        return
    reader.fieldnames = header
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, ValueError(f"not valid CSV: {exc}")
            return
        line = reader.line_num  # the last physical line of the record
        if "__extra__" in row:
            yield line, ValueError("more values than the header has columns")
            continue
        if all((v or "").strip() == "" for v in row.values()):
            continue  # blank line
        yield line, {k: v for k, v in row.items() if v not in (None, "")}


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict | Exception]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, ValueError(f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield number, ValueError("each line must be a JSON object")
            continue
        yield number, value


def parse_items(data: bytes | str, *, fmt: str) -> list[ParsedItem]:
    """Parse a whole file; raise ImportError_ naming every bad line (nothing is returned then)."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ImportError_([(data[: exc.start].count(b"\n") + 1, "not UTF-8 text")]) from None
    if fmt not in ("csv", "jsonl"):
        raise ValidationError(f"unknown format {fmt!r}: csv or jsonl")
    rows = _csv_rows(data) if fmt == "csv" else _jsonl_rows(data)
    items: list[ParsedItem] = []
    problems: list[tuple[int, str]] = []
    for line, row in rows:
        if isinstance(row, Exception):
            problems.append((line, str(row)))
            continue
        try:
            items.append(_row_to_item(line, row))
        except ValueError as exc:
            problems.append((line, str(exc)))
    if problems:
        raise ImportError_(problems)
    if not items:
        raise ImportError_([(1, "the file holds no items")])
    if len(items) > MAX_ITEMS:
        raise ImportError_([(items[MAX_ITEMS].line, f"more than {MAX_ITEMS:,} items")])
    return items


def guess_format(filename: str) -> str:
    name = filename.lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise ValidationError(f"{filename}: a golden set is a .csv or .jsonl file")


@transaction.atomic
def add_items(*, golden_set: GoldenSet, items: Iterable[ParsedItem]) -> list[GoldenItem]:
    """Append items to a set, detecting the language of those without one. Items that come from
    a case already in the set are skipped (a case is in a set at most once)."""
    items = list(items)
    GoldenSet.objects.select_for_update().get(id=golden_set.id)
    start = (golden_set.items.aggregate(n=Max("position"))["n"] or 0) + 1
    known_cases = set(
        golden_set.items.filter(source_case_id__isnull=False).values_list(
            "source_case_id", flat=True
        )
    )
    fresh = []
    for item in items:
        if item.source_case_id is not None:
            if item.source_case_id in known_cases:
                continue
            known_cases.add(item.source_case_id)
        fresh.append(item)
    missing = [i for i, item in enumerate(fresh) if not item.language]
    detected = detect_languages([fresh[i].content for i in missing]) if missing else []
    languages = {i: code or "" for i, code in zip(missing, detected, strict=True)}
    rows = [
        GoldenItem(
            golden_set=golden_set,
            position=start + offset,
            content=item.content,
            content_type=item.content_type,
            expected_violation=item.expected_violation,
            expected_rule_ids=list(item.expected_rule_ids),
            language=item.language or languages.get(offset, ""),
            note=item.note,
            group=item.group,
            source=item.source,
            source_case_id=item.source_case_id,
            must_pass=item.must_pass,
        )
        for offset, item in enumerate(fresh)
    ]
    return GoldenItem.objects.bulk_create(rows, batch_size=1000)


@transaction.atomic
def import_golden_set(
    *,
    policy,
    name: str,
    data: bytes | str,
    fmt: str,
    actor=None,
    description: str = "",
    source: str = "",
    licence_notice: str = "",
    gates_publishing: bool = False,
    replace: bool = False,
) -> GoldenSet:
    """Create the set `name` for `policy` from a file (or, with `replace`, swap its items)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "a golden set needs a name"})
    items = parse_items(data, fmt=fmt)
    golden_set = GoldenSet.objects.filter(policy=policy, name=name).first()
    if golden_set is not None and not replace:
        raise ValidationError({"name": f"{policy.slug} already has a golden set named {name!r}"})
    if golden_set is not None:
        if golden_set.runs.exists():
            raise ValidationError(
                {"name": f"{name!r} has evaluation runs: import under a new name instead"}
            )
        golden_set.items.all().delete()
    else:
        if gates_publishing:
            GoldenSet.objects.filter(policy=policy, gates_publishing=True).update(
                gates_publishing=False
            )
        golden_set = GoldenSet.objects.create(
            policy=policy,
            name=name,
            description=description,
            source=source,
            licence_notice=licence_notice,
            gates_publishing=gates_publishing,
            created_by=actor,
        )
    add_items(golden_set=golden_set, items=items)
    return golden_set


@transaction.atomic
def make_gating_set(golden_set: GoldenSet) -> None:
    """Make `golden_set` the one set that gates publishing of its policy."""
    # Lock the policy's sets, so two admins switching the gate at once can't both win.
    list(GoldenSet.objects.select_for_update().filter(policy_id=golden_set.policy_id).values("id"))
    GoldenSet.objects.filter(policy_id=golden_set.policy_id, gates_publishing=True).exclude(
        id=golden_set.id
    ).update(gates_publishing=False)
    GoldenSet.objects.filter(id=golden_set.id).update(gates_publishing=True)


def _item_record(item: GoldenItem) -> dict:
    return {
        "content": item.content,
        "expected": "violating" if item.expected_violation else "not_violating",
        "rule_ids": list(item.expected_rule_ids),
        "content_type": item.content_type,
        "language": item.language,
        "note": item.note,
        "group": item.group,
        "source": item.source,
        "must_pass": item.must_pass,
        "case_id": item.source_case_id,
    }


def export_golden_set(golden_set: GoldenSet, *, fmt: str) -> str:
    """The set in the import format: exporting then importing gives the same items."""
    records = [_item_record(item) for item in golden_set.items.order_by("position")]
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt != "csv":
        raise ValidationError(f"unknown format {fmt!r}: csv or jsonl")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow(
            {
                **r,
                "rule_ids": " ".join(r["rule_ids"]),
                "must_pass": "true" if r["must_pass"] else "false",
                "case_id": "" if r["case_id"] is None else r["case_id"],
            }
        )
    return out.getvalue()
