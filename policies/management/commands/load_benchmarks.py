"""`manage.py load_benchmarks`: policies and golden sets from the OpenAI Moderation evaluation set
(one policy per category) and HateCheck (a hate-speech policy), for `manage.py evaluate`."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from policies.workbench.benchmarks import load_benchmarks


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument(
            "--datasets",
            type=Path,
            default=None,
            help="The shared datasets folder (default: ../shared/datasets).",
        )
        parser.add_argument("--limit", type=int, help="at most K items per set (for a quick look)")

    def handle(self, *args, datasets, limit, **options):
        root = datasets or Path(
            getattr(settings, "DATASETS_DIR", settings.BASE_DIR.parent / "shared" / "datasets")
        )
        if not (root / "hatecheck").exists() or not (root / "openai-moderation").exists():
            raise CommandError(f"{root} does not hold hatecheck/ and openai-moderation/")
        for golden_set in load_benchmarks(root, limit=limit):
            self.stdout.write(
                f"{golden_set.policy.slug}: {golden_set.name!r}, {golden_set.items.count()} items\n"
            )
