"""Walk the audit log's hash chain, check it against every signed checkpoint, write a new one.

Exit codes:
  0  the chain is intact and consistent with every checkpoint read (a new checkpoint written)
  1  the chain is broken, or disagrees with a checkpoint (emptied, truncated, rebuilt, rewritten)
  2  bad command-line arguments
  3  a checkpoint file was refused (forged, wrong key, altered, malformed); the chain agrees with
     every checkpoint that verified
  4  checkpoints could not be checked or written (no key, unreadable key or storage)
  5  (with --records) the chain is intact, but a decision, recommendation, item, case, policy,
     policy version or policy rule no longer matches the hash its audit event recorded (edited,
     deleted, or present without an event)
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from appeals.audit import verify_chain
from appeals.disclosure import checkpoints
from appeals.models import AuditEvent
from appeals.record_check import adopt_unrecorded_rows, verify_records

EXIT_BROKEN = 1
EXIT_REFUSED_CHECKPOINT = 3
EXIT_CANNOT_CHECK = 4
EXIT_RECORDS = 5


class Command(BaseCommand):
    help = (
        "Check that no audit event was altered, removed, inserted or reordered, and that the "
        "chain agrees with every signed checkpoint; then sign a new checkpoint. Exit codes: "
        "0 intact, 1 broken or disagrees with a checkpoint, 3 a checkpoint file refused, "
        "4 checkpoints could not be checked or written, 5 (--records) a record does not match "
        "its audit event."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--expect-head",
            default="",
            help="a head hash printed by an earlier run: also catches removal of the newest events",
        )
        parser.add_argument("--chunk-size", type=int, default=5000)
        parser.add_argument(
            "--no-checkpoint",
            action="store_true",
            help="verify only: do not sign and store a checkpoint of the head",
        )
        parser.add_argument(
            "--records",
            action="store_true",
            help="also recompute the hash of every decision, recommendation, item, case, policy, "
            "policy version and rule, and name each row edited, deleted or added outside the "
            "application",
        )
        parser.add_argument(
            "--adopt-unrecorded",
            action="store_true",
            help="once, after upgrading: record the hashes of rows that no audit event names yet "
            "(the adoption is itself an audit event), then stop",
        )
        parser.add_argument(
            "--public-key",
            action="store_true",
            help="print the checkpoint verifying key (PEM) and its key id, then stop",
        )

    def handle(self, *args, expect_head: str, chunk_size: int, no_checkpoint: bool, **options):
        if options["public_key"]:
            return self._print_public_key()
        if options["adopt_unrecorded"]:
            adopted = adopt_unrecorded_rows(
                actor_label="verify_audit", source=AuditEvent.Source.COMMAND
            )
            self.stdout.write(f"{adopted} rows without an audit event adopted into the chain")
            return
        problems: list[str] = []
        report = verify_chain(chunk_size=chunk_size, expect_head=expect_head.strip())
        intact = (
            f"{report.events_checked} events; head event {report.head_id} hash {report.head_hash}"
        )
        if report.first_broken_id is not None:
            where = (
                f"event {report.first_broken_id} ({report.broken_kind}, "
                f"case {report.broken_case_id if report.broken_case_id is not None else '-'})"
            )
            problems.append(
                f"audit chain broken at {where}: {report.problem}. "
                f"{report.events_checked} events before it verified."
            )
        elif not report.ok:
            problems.append(f"audit chain broken: {report.problem}")

        try:
            found = checkpoints.check_chain_against_checkpoints(
                public_key=checkpoints.verifying_key(), chunk_size=chunk_size
            )
        except checkpoints.CheckpointError as error:
            self._fail(problems + [f"checkpoints not checked: {error}"], EXIT_CANNOT_CHECK)

        # Newest checkpoint first: "against the last checkpoint" is the first line.
        for finding in sorted(found.findings, key=lambda f: f.checkpoint.signed_at, reverse=True):
            problems.append(f"audit chain {finding.describe()}")
        refused = [f"checkpoint {r.name} refused: {r.reason}" for r in found.refused]

        if problems:
            if report.ok:
                problems.append(
                    f"(the chain's own links verify: {intact}. Someone who holds the database "
                    "emptied, cut or rebuilt it.)"
                )
            self._fail(problems + refused, EXIT_BROKEN)
        self.stdout.write(f"audit chain intact: {intact}")
        if found.checkpoints:
            latest = found.latest
            self.stdout.write(
                f"consistent with {len(found.checkpoints)} signed checkpoints; latest: "
                f"{latest.describe()}"
            )
        else:
            self.stdout.write("no signed checkpoints yet: only the chain's own links were checked")
        if refused:
            self._fail(refused, EXIT_REFUSED_CHECKPOINT)
        if options["records"]:
            self._check_records(chunk_size)
        if no_checkpoint:
            return
        try:
            if checkpoints.verify_only():
                self.stdout.write("verify-only: no signing key here, no checkpoint written")
                return
            written = checkpoints.write_checkpoint()
        except checkpoints.CheckpointError as error:
            self._fail([f"checkpoint not written: {error}"], EXIT_CANNOT_CHECK)
        self.stdout.write(f"checkpoint written: {written.describe()}")

    def _check_records(self, chunk_size: int) -> None:
        records = verify_records(chunk_size=chunk_size)
        if not records.ok:
            self._fail(
                [f"record {problem.describe()}" for problem in records.problems]
                + [f"{len(records.problems)} records do not match the audit chain"],
                EXIT_RECORDS,
            )
        self.stdout.write(f"records match the audit chain: {records.summary()}")

    def _print_public_key(self):
        try:
            key = checkpoints.verifying_key()
        except checkpoints.CheckpointError as error:
            raise CommandError(str(error), returncode=EXIT_CANNOT_CHECK) from None
        if key is None:
            raise CommandError(
                "no checkpoint key yet: run verify_audit once, or set AUDIT_CHECKPOINT_KEY[_FILE]",
                returncode=EXIT_CANNOT_CHECK,
            )
        self.stdout.write(f"key id {checkpoints.key_id(key)}")
        self.stdout.write(checkpoints.public_key_pem(key).rstrip())

    def _fail(self, lines: list[str], code: int):
        # CommandError prints to stderr and exits with `code` when run from the command line.
        raise CommandError("\n".join(lines), returncode=code)
