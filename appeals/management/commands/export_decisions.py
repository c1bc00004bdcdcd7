"""Export decided cases for audit: CSV, JSON Lines, or DSA statements of reasons.

    manage.py export_decisions --format csv --output decisions.csv \
        [--since 2026-11-01] [--until 2026-12-01] [--policy spam] [--pseudonymise]

`--since` is inclusive and `--until` exclusive, both on the decision time; a bare date means the
start of that day in UTC. `--format dsa` writes JSON Lines, one `{"statements": [...]}` batch of
at most 100 per line, each a body for the Transparency Database's `POST /api/v1/statements`.
`--output -` writes to standard output. `--check-mappings` only validates the policies' DSA
mappings (the same check the admin form and the DSA export run).
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime

from appeals.disclosure.dsa import MappingResolver
from appeals.disclosure.exports import FORMATS, Export, ExportFilters
from appeals.models import AuditEvent
from policies.models import Policy


def parse_moment(value: str | None, *, option: str) -> dt.datetime | None:
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(
                f"{option}: {value!r} is not a date (YYYY-MM-DD) or an ISO date-time"
            )
        moment = dt.datetime.combine(day, dt.time.min)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


class Command(BaseCommand):
    help = "Export decided cases, with the model's recommendation beside each decision."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=FORMATS, default="csv", dest="fmt")
        parser.add_argument("--output", help="a file path, or - for stdout")
        parser.add_argument(
            "--check-mappings",
            action="store_true",
            help="only check every policy's DSA mapping (exit 1 if one is wrong)",
        )
        parser.add_argument("--since", help="decided at or after (date or ISO date-time, UTC)")
        parser.add_argument("--until", help="decided before (date or ISO date-time, UTC)")
        parser.add_argument("--policy", default="", help="only this policy (slug)")
        parser.add_argument(
            "--pseudonymise",
            action="store_true",
            help="replace author, reporter, appellant and reviewer ids with stable pseudonyms",
        )

    def handle(
        self, *args, fmt, output, since, until, policy, pseudonymise, check_mappings, **options
    ):
        if check_mappings:
            try:
                MappingResolver().check_policies(policy.strip())
            except ValidationError as error:
                raise CommandError(
                    "DSA mappings with problems:\n  " + "\n  ".join(error.messages)
                ) from None
            self.stdout.write("every policy's DSA mapping is valid")
            return
        if not output:
            raise CommandError("--output is required (a file path, or - for stdout)")
        filters = ExportFilters(
            since=parse_moment(since, option="--since"),
            until=parse_moment(until, option="--until"),
            policy=policy.strip(),
            pseudonymise=pseudonymise,
        )
        if filters.policy and not Policy.objects.filter(slug=filters.policy).exists():
            raise CommandError(f"--policy: no policy with slug {filters.policy!r}")
        try:
            export = Export(
                fmt=fmt,
                filters=filters,
                actor_label=f"manage.py export_decisions ({getpass.getuser()})",
                source=AuditEvent.Source.COMMAND,
            )
        except ValidationError as error:
            raise CommandError(
                "the DSA mapping is not valid:\n  " + "\n  ".join(error.messages)
            ) from None

        if output == "-":
            for chunk in export.chunks():
                sys.stdout.write(chunk)
        else:
            # Write beside the target, then rename: a failed export leaves no half file behind.
            partial = f"{output}.partial"
            with open(partial, "w", encoding="utf-8", newline="") as handle:
                for chunk in export.chunks():
                    handle.write(chunk)
            os.replace(partial, output)
        what = "statements" if fmt == "dsa" else "rows"
        self.stderr.write(f"exported {export.rows} decisions ({export.records} {what}) to {output}")
