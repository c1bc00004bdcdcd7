"""manage.py import_cases FILE.jsonl: load flagged items and appeals from a JSON Lines file."""

from __future__ import annotations

import re
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from appeals.intake.import_cases import JsonLinesImport
from appeals.intake.tokens import get_or_create_platform


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
        try:
            stream = sys.stdin.buffer if file == "-" else open(file, "rb")
        except OSError as error:
            raise CommandError(f"cannot read {file}: {error.strerror}") from None
        platform_obj, created = get_or_create_platform(slug=platform)
        if created:
            self.stdout.write(f"Created platform {platform!r}.")

        def report(number: int, problems: list[dict]) -> None:
            for problem in problems:
                self.stderr.write(f"line {number}: {problem['field']}: {problem['problem']}")

        run = JsonLinesImport(platform=platform_obj, batch_size=batch_size, report=report)
        with stream:
            c = run.take_lines(stream)
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
