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
            help="Password for the demo logins it creates (default: a new random one). "
            "Accounts that already exist are never changed.",
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
        if summary.users_kept:
            self.stdout.write(
                f"Existing accounts left as they were (password and rights unchanged): "
                f"{', '.join(summary.users_kept)}"
            )
        if summary.users_created:
            self.stdout.write(
                f"New demo logins (all share one password): {', '.join(summary.users_created)}"
                + (" (admin is a superuser)" if "admin" in summary.users_created else "")
            )
            self.stdout.write(f"Password: {summary.password}")
