from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from policies.services import import_policy_version


class Command(BaseCommand):
    help = "Import FILE as a new version of the policy SLUG (created if new)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--draft", action="store_true", help="Import as a draft, not published."
        )
        parser.add_argument(
            "--licence-file", type=Path, help="A licence notice to keep with the text."
        )

    def handle(self, *args, file: Path, slug: str, name: str, draft: bool, licence_file, **options):
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CommandError(f"{file}: no such file") from None
        except UnicodeDecodeError:
            raise CommandError(f"{file}: not UTF-8 text") from None
        notice = licence_file.read_text(encoding="utf-8") if licence_file else ""
        try:
            version = import_policy_version(
                slug=slug,
                name=name,
                text=text,
                source=str(file),
                licence_notice=notice,
                publish=not draft,
            )
        except ValidationError as error:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
            ) from None
        rules = version.rule_ids()
        self.stdout.write(
            f"{version.label} ({version.get_status_display().lower()}), sha256 {version.sha256[:12]}…, "
            f"{len(rules)} rules: {', '.join(rules[:12])}{' …' if len(rules) > 12 else ''}"
        )
