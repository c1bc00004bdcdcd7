"""`manage.py evaluate`: run a policy version on a golden set (or a replay of decided cases)
in this process, print the metrics table, and exit 3 when the publish gate fails."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from appeals import policy_workbench
from appeals.models import AuditEvent
from policies.models import Policy
from policies.workbench import gate, runs
from policies.workbench.models import GoldenSet
from policies.workbench.report import metrics_table

GATE_FAILED = 3


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--policy", required=True, help="the policy's slug")
        parser.add_argument(
            "--policy-version",
            type=int,
            help="the version number (default: the newest, draft or published)",
        )
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--golden-set", help="the golden set's name")
        source.add_argument(
            "--replay", type=int, metavar="N", help="the N most recent human-decided cases"
        )
        parser.add_argument("--limit", type=int, help="only the first K items")

    def handle(self, *args, **options):
        policy = Policy.objects.filter(slug=options["policy"]).first()
        if policy is None:
            raise CommandError(f"no policy {options['policy']!r}")
        versions = policy.versions.order_by("-number")
        if options["policy_version"] is not None:
            versions = versions.filter(number=options["policy_version"])
        version = versions.first()
        if version is None:
            raise CommandError(f"{policy.slug} has no version {options['policy_version'] or ''}")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            if options["replay"] is not None:
                golden_set = policy_workbench.replay_set(version=version, size=options["replay"])
            else:
                golden_set = GoldenSet.objects.filter(
                    policy=policy, name=options["golden_set"]
                ).first()
                if golden_set is None:
                    names = ", ".join(policy.golden_sets.values_list("name", flat=True)) or "none"
                    raise CommandError(
                        f"{policy.slug} has no golden set {options['golden_set']!r} (it has: {names})"
                    )
            run = policy_workbench.start_evaluation(
                version=version,
                golden_set=golden_set,
                actor_label="manage.py evaluate",
                source=AuditEvent.Source.COMMAND,
                limit=options["limit"],
                enqueue=False,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        run = runs.execute_run(run.id)
        self.stdout.write(
            metrics_table(
                run.metrics,
                title=f"run {run.id}: {version.label} ({version.status}) × {golden_set.name} "
                f"[{run.backend} {run.model_id}]",
            )
        )
        published = policy.current_version()
        baseline = None
        if published is not None and published.id != version.id:
            baseline = gate.latest_full_run(published, golden_set)
        problems = gate.judge_runs(run, baseline, margin=gate.settings.WORKBENCH_F1_MARGIN)
        if baseline is not None:
            self.stdout.write(
                f"baseline: run {baseline.id} of {published.label}, F1 "
                f"{baseline.metrics.get('f1') if baseline.metrics.get('f1') is None else round(baseline.metrics['f1'], 3)}\n"
            )
        if problems:
            raise CommandError("gate failed: " + "; ".join(problems), returncode=GATE_FAILED)
        self.stdout.write("gate passed\n")
