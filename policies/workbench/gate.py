"""Whether a policy version may be published, judged on its run on the policy's gating set.

Refused when the version has no finished run on that set, when its F1 of "violating" is more
than `WORKBENCH_F1_MARGIN` below the published version's on the same set, or when any item
marked "must pass" fails. A refusal can be overridden only by a senior, with a reason; that
step (and its audit event) lives in `appeals.policy_workbench`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from policies.models import PolicyVersion

from .models import EvaluationRun, GoldenSet


@dataclass(frozen=True)
class GateResult:
    version_id: int
    golden_set_id: int | None
    candidate_run_id: int | None
    baseline_run_id: int | None
    candidate_f1: float | None = None
    baseline_f1: float | None = None
    margin: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "version_id": self.version_id,
            "golden_set_id": self.golden_set_id,
            "candidate_run_id": self.candidate_run_id,
            "baseline_run_id": self.baseline_run_id,
            "candidate_f1": self.candidate_f1,
            "baseline_f1": self.baseline_f1,
            "margin": self.margin,
            "passed": self.passed,
            "problems": list(self.problems),
        }


def gating_set(policy) -> GoldenSet | None:
    return GoldenSet.objects.filter(policy=policy, gates_publishing=True).first()


def latest_full_run(version: PolicyVersion, golden_set: GoldenSet) -> EvaluationRun | None:
    """The newest finished run of the version over the whole set (a `--limit` run doesn't count)."""
    return (
        EvaluationRun.objects.finished()
        .filter(policy_version=version, golden_set=golden_set, item_limit__isnull=True)
        .order_by("-finished_at", "-id")
        .first()
    )


def judge_runs(
    candidate: EvaluationRun, baseline: EvaluationRun | None, *, margin: float
) -> list[str]:
    """The gate's rule on two finished runs (no database access)."""
    problems = []
    failed = candidate.metrics.get("must_pass_failed") or []
    if failed:
        problems.append(
            f"{len(failed)} must-pass item{'s' if len(failed) != 1 else ''} failed "
            f"(golden item ids {', '.join(map(str, failed[:10]))}{'…' if len(failed) > 10 else ''})"
        )
    if baseline is not None:
        new, old = candidate.metrics.get("f1"), baseline.metrics.get("f1")
        if old is not None and (new is None or old - new > margin + 1e-12):
            problems.append(
                f"F1 fell from {old:.3f} ({baseline.policy_version.label}) to "
                f"{'n/a' if new is None else f'{new:.3f}'}, more than the margin of {margin:.3f}"
            )
    return problems


def check_gate(version: PolicyVersion, *, margin: float | None = None) -> GateResult:
    margin = settings.WORKBENCH_F1_MARGIN if margin is None else margin
    golden_set = gating_set(version.policy)
    if golden_set is None:
        return GateResult(
            version.id,
            None,
            None,
            None,
            margin=margin,
            problems=[f"{version.policy.slug} has no golden set marked to gate publishing"],
        )
    candidate = latest_full_run(version, golden_set)
    published = version.policy.current_version()
    baseline = (
        latest_full_run(published, golden_set)
        if published is not None and published.id != version.id
        else None
    )
    if candidate is None:
        return GateResult(
            version.id,
            golden_set.id,
            None,
            baseline.id if baseline else None,
            margin=margin,
            problems=[f"{version.label} has no finished run on the golden set {golden_set.name!r}"],
        )
    return GateResult(
        version.id,
        golden_set.id,
        candidate.id,
        baseline.id if baseline else None,
        candidate_f1=candidate.metrics.get("f1"),
        baseline_f1=baseline.metrics.get("f1") if baseline else None,
        margin=margin,
        problems=judge_runs(candidate, baseline, margin=margin),
    )
