from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from policies.engine import engine_config, policy_spec
from policies.models import Policy, PolicyVersion


class Command(BaseCommand):
    help = (
        "For policy authors: run the safeguard model on TEXT under a policy and print the prompt's "
        "size in tokens, the model's reasoning, the parsed answer and the cited rules with their text."
    )

    def add_arguments(self, parser):
        parser.add_argument("--policy", required=True, help="Policy slug.")
        # Not `--version`: Django's BaseCommand already defines it (the framework's version).
        parser.add_argument(
            "--policy-version",
            type=int,
            dest="policy_version",
            metavar="N",
            help="Policy version number (default: the latest published).",
        )
        parser.add_argument("--text", help="The content to classify.")
        parser.add_argument("--file", help="Read the content from a file instead.")

    def handle(self, *args, policy, policy_version, text, file, **options):
        from policies.safeguard import check_policy, unavailable_reason

        if bool(text) == bool(file):
            raise CommandError("give exactly one of --text or --file")
        if file:
            try:
                with open(file, encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as error:
                raise CommandError(f"{file}: {error.strerror}") from None
        try:
            policy_row = Policy.objects.get(slug=policy)
        except Policy.DoesNotExist:
            slugs = ", ".join(Policy.objects.values_list("slug", flat=True)) or "none yet"
            raise CommandError(f"no policy with slug {policy!r} (policies: {slugs})") from None
        versions = policy_row.versions.all()
        chosen = (
            (
                versions.filter(number=policy_version)
                if policy_version
                else versions.filter(status=PolicyVersion.Status.PUBLISHED)
            )
            .order_by("-number")
            .first()
        )
        if chosen is None:
            wanted = f"version {policy_version}" if policy_version else "published version"
            raise CommandError(f"policy {policy!r} has no {wanted}")
        config = engine_config()
        reason = unavailable_reason(config)
        if reason:
            raise CommandError(reason)
        self.stdout.write(
            check_policy(policy_spec(chosen), text, config, conversation_date=timezone.now().date())
        )
