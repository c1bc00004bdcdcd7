"""Walk the audit log's hash chain and name the first broken link. Exit code 1 when broken."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from appeals.audit import verify_chain


class Command(BaseCommand):
    help = "Check that no audit event was altered, removed, inserted or reordered."

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            default="",
            help="a head hash printed by an earlier run: also catches removal of the newest events",
        )
        parser.add_argument("--chunk-size", type=int, default=5000)

    def handle(self, *args, expect_head: str, chunk_size: int, **options):
        report = verify_chain(chunk_size=chunk_size, expect_head=expect_head.strip())
        if report.ok:
            self.stdout.write(
                f"audit chain intact: {report.events_checked} events; "
                f"head event {report.head_id} hash {report.head_hash}"
            )
            return
        if report.first_broken_id is not None:
            where = (
                f"event {report.first_broken_id} ({report.broken_kind}, "
                f"case {report.broken_case_id if report.broken_case_id is not None else '-'})"
            )
            message = (
                f"audit chain broken at {where}: {report.problem}. "
                f"{report.events_checked} events before it verified."
            )
        else:
            message = f"audit chain broken: {report.problem}"
        # CommandError exits with status 1 and prints to stderr.
        raise CommandError(message, returncode=1)
