from django.core.management.base import BaseCommand

from appeals.review.roles import ROLE_PERMISSIONS, bootstrap_roles


class Command(BaseCommand):
    help = "Create the reviewer, senior_reviewer, policy_admin and auditor groups with their permissions."

    def handle(self, *args, **options):
        bootstrap_roles()
        for role, permissions in ROLE_PERMISSIONS.items():
            self.stdout.write(f"{role}: {', '.join(permissions)}")
