import re

from django.core.management.base import BaseCommand, CommandError

from appeals.intake.tokens import create_api_token, get_or_create_platform


class Command(BaseCommand):
    help = (
        "Issue an intake API token for a platform (created if missing). The token is printed "
        "once, as the last line of the output; only its SHA-256 is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="What the token is for, e.g. 'acme production'.")
        parser.add_argument(
            "--platform",
            default="default",
            help="Slug of the platform the token sends for (default: default).",
        )

    def handle(self, *args, name: str, platform: str, **options):
        if not re.fullmatch(r"[-a-zA-Z0-9_]{1,80}", platform):
            raise CommandError(
                f"--platform must be a slug (letters, digits, - and _), not {platform!r}"
            )
        if not name.strip() or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters")
        platform_obj, created = get_or_create_platform(slug=platform)
        if created:
            self.stdout.write(f"Created platform {platform_obj.slug!r}.")
        token, raw = create_api_token(platform=platform_obj, name=name.strip())
        self.stdout.write(
            f"Token {token.name!r} for platform {platform_obj.slug!r} (prefix {token.prefix}). "
            "Copy it now; it is not shown again:"
        )
        self.stdout.write(raw)
