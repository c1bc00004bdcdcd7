"""Importing flagged items and appeals from JSON Lines: one object a line, in the shapes
POST /api/v1/items and POST /api/v1/appeals take. `manage.py import_cases` is a thin wrapper.

Items go in batches through the bulk intake; an appeal waits for the items above it, so it can
appeal an item in the same file. Each bad line is reported with its number and the fields at
fault; the good ones are imported all the same.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from appeals.models import AuditEvent, Platform

from . import bulk
from . import services as intake
from .schemas import AppealIn, FieldProblem, InvalidPayload, ItemIn, parse_payload


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class JsonLinesImport:
    """One import run. Feed it lines (`take_lines`); `counts` says what came of them, and
    `report(number, problems)` is called for every line that failed."""

    def __init__(
        self,
        *,
        platform: Platform,
        batch_size: int,
        report: Callable[[int, list[dict]], None],
        source: AuditEvent.Source = AuditEvent.Source.COMMAND,
    ) -> None:
        self.platform = platform
        self.batch_size = batch_size
        self.report = report
        self.source = source
        self.counts = {"created": 0, "existing": 0, "failed": 0, "empty": 0}
        self.batch: list[tuple[int, ItemIn]] = []

    def take_lines(self, lines: Iterable[bytes]) -> dict[str, int]:
        for number, raw in enumerate(lines, start=1):
            self.take_line(number, raw)
        self.flush()
        return self.counts

    def fail(self, number: int, problems: list[dict]) -> None:
        self.counts["failed"] += 1
        self.report(number, problems)

    def take_line(self, number: int, raw: bytes) -> None:
        if not raw.strip():
            self.counts["empty"] += 1
            return
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError:
            self.fail(number, [{"field": "(line)", "problem": "is not valid UTF-8"}])
            return
        except json.JSONDecodeError as error:
            self.fail(
                number,
                [
                    {
                        "field": "(line)",
                        "problem": f"is not valid JSON: {error.msg} at column {error.colno}",
                    }
                ],
            )
            return
        except (ValueError, RecursionError) as error:
            problem = "nests too deeply" if isinstance(error, RecursionError) else str(error)
            self.fail(
                number, [{"field": "(line)", "problem": f"is not acceptable JSON: {problem}"}]
            )
            return
        is_appeal = isinstance(data, dict) and "statement" in data
        try:
            payload = parse_payload(AppealIn if is_appeal else ItemIn, data)
        except InvalidPayload as error:
            self.fail(
                number,
                [{**p, "field": "(line)"} if p["field"] == "(body)" else p for p in error.problems],
            )
            return
        if not is_appeal:
            self.batch.append((number, payload))
            if len(self.batch) >= self.batch_size:
                self.flush()
            return
        self.flush()  # the appeal may be against an item above it
        try:
            result = intake.receive_appeal(
                platform=self.platform, payload=payload, source=self.source
            )
        except FieldProblem as problem:
            self.fail(number, [problem.as_dict()])
            return
        self.counts["created" if result.created else "existing"] += 1

    def flush(self) -> None:
        if not self.batch:
            return
        numbers = [number for number, _ in self.batch]
        outcomes = bulk.receive_items_bulk(
            platform=self.platform,
            payloads=[payload for _, payload in self.batch],
            invalid={},
            source=self.source,
        )
        self.batch = []
        for outcome in outcomes:
            if outcome.status == 201:
                self.counts["created"] += 1
            elif outcome.status == 200:
                self.counts["existing"] += 1
            else:
                self.fail(numbers[outcome.index], list(outcome.problems))
