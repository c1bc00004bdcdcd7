"""manage.py import_cases FILE.jsonl: load flagged items and appeals from a JSON Lines file."""

from __future__ import annotations

import json
import re
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from appeals.intake import services as intake
from appeals.intake.schemas import AppealIn, FieldProblem, InvalidPayload, ItemIn, parse_payload
from appeals.intake.tokens import get_or_create_platform
from appeals.models import AuditEvent


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class Command(BaseCommand):
    help = (
        "Import flagged items and appeals from a JSON Lines file, one JSON object a line, in the "
        'shapes POST /api/v1/items and POST /api/v1/appeals take. A line with a "statement" key '
        "is an appeal; every other line is a flagged item. Empty lines are skipped. Items go in "
        "batches; an appeal waits for the items above it, so it can appeal an item in the same "
        "file. Lines already imported with the same content count as existing. Each bad line is "
        "reported on stderr with its line number and the fields at fault; the exit status is 1 "
        "if any line failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path to the .jsonl file ('-' for standard input).")
        parser.add_argument(
            "--platform",
            default="default",
            help="Slug of the platform the cases come from (default: default; created if missing).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Items per transaction (default 500)."
        )

    def handle(self, *args, file: str, platform: str, batch_size: int, **options):
        if not re.fullmatch(r"[-a-zA-Z0-9_]{1,80}", platform):
            raise CommandError(f"--platform must be a slug, not {platform!r}")
        if not 1 <= batch_size <= settings.BULK_INTAKE_MAX_ITEMS:
            raise CommandError(f"--batch-size must be 1 to {settings.BULK_INTAKE_MAX_ITEMS}")
        self.counts = {"created": 0, "existing": 0, "failed": 0, "empty": 0}
        self.batch: list[tuple[int, ItemIn]] = []
        self.batch_size = batch_size
        try:
            stream = sys.stdin.buffer if file == "-" else open(file, "rb")
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from None
        self.platform, created = get_or_create_platform(slug=platform)
        if created:
            self.stdout.write(f"Created platform {platform!r}.")
        with stream:
            for number, raw in enumerate(stream, start=1):
                self.take_line(number, raw)
        self.flush()
        c = self.counts
        self.stdout.write(
            f"{c['created'] + c['existing'] + c['failed']} lines read: {c['created']} created, "
            f"{c['existing']} already here, {c['failed']} failed"
            + (f", {c['empty']} empty lines skipped" if c["empty"] else "")
            + "."
        )
        if c["failed"]:
            raise CommandError(
                f"{c['failed']} line(s) failed; see the messages above", returncode=1
            )

    def fail(self, number: int, problems: list[dict]) -> None:
        self.counts["failed"] += 1
        for problem in problems:
            self.stderr.write(f"line {number}: {problem['field']}: {problem['problem']}")

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
                platform=self.platform, payload=payload, source=AuditEvent.Source.COMMAND
            )
        except FieldProblem as problem:
            self.fail(number, [problem.as_dict()])
            return
        self.counts["created" if result.created else "existing"] += 1

    def flush(self) -> None:
        if not self.batch:
            return
        numbers = [number for number, _ in self.batch]
        outcomes = intake.receive_items_bulk(
            platform=self.platform,
            payloads=[payload for _, payload in self.batch],
            invalid={},
            source=AuditEvent.Source.COMMAND,
        )
        self.batch = []
        for outcome in outcomes:
            if outcome.status == 201:
                self.counts["created"] += 1
            elif outcome.status == 200:
                self.counts["existing"] += 1
            else:
                self.fail(numbers[outcome.index], list(outcome.problems))
