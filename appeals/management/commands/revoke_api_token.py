from django.core.management.base import BaseCommand, CommandError

from appeals.intake.tokens import revoke_api_token
from appeals.models import ApiToken, AuditEvent


class Command(BaseCommand):
    help = (
        "Revoke an intake API token, for good, by the prefix lists show (e.g. acp_Ab3dEf9h). "
        "The revocation is an audit event; nothing un-revokes a token."
    )

    def add_arguments(self, parser):
        parser.add_argument("prefix", help="The token's prefix, as the admin lists it.")

    def handle(self, *args, prefix: str, **options):
        matches = list(ApiToken.objects.select_related("platform").filter(prefix=prefix.strip()))
        if not matches:
            raise CommandError(f"no API token has the prefix {prefix!r}")
        if len(matches) > 1:
            names = ", ".join(f"{t.name!r} ({t.platform.slug})" for t in matches)
            raise CommandError(f"{len(matches)} tokens share the prefix {prefix!r}: {names}")
        token = matches[0]
        if token.revoked_at is not None:
            self.stdout.write(
                f"Token {token} was already revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC."
            )
            return
        revoke_api_token(
            token=token, source=AuditEvent.Source.COMMAND, actor_label="manage.py revoke_api_token"
        )
        self.stdout.write(f"Revoked token {token} of platform {token.platform.slug!r}.")
