from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from appeals.demo import datasets_dir, load_demo


class Command(BaseCommand):
    help = "Load the demo policies, demo cases from public moderation data, and demo logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--datasets",
            type=Path,
            default=None,
            help="The shared datasets folder (default: ../shared/datasets).",
        )
        parser.add_argument(
            "--cases",
            type=int,
            default=200,
            help="How many texts to take from the OpenAI moderation eval set.",
        )
        parser.add_argument(
            "--password",
            default=None,
            help="Password for the demo logins (default: a new random one).",
        )

    def handle(self, *args, datasets, cases, password, **options):
        root = datasets or datasets_dir()
        if not (root / "openai-moderation").is_dir():
            raise CommandError(f"{root}: not the shared datasets folder (pass --datasets)")
        summary = load_demo(root=root, cases=cases, password=password)
        self.stdout.write(
            f"Demo loaded: {summary.policies} policies, {summary.cases_created} new flagged items, "
            f"{summary.appeals_created} new appeals."
        )
        self.stdout.write(
            "Demo logins (all share one password): reviewer, senior, auditor, "
            "policyadmin, admin (superuser)"
        )
        self.stdout.write(f"Password: {summary.password}")
