"""Celery tasks of the policies app: thin wrappers over the workbench services. Routing is in
settings (`policies.tasks.run_evaluation` goes to the gpu queue)."""

from __future__ import annotations

from celery import shared_task

from .workbench import runs


@shared_task(acks_late=True, reject_on_worker_lost=True)
def run_evaluation(run_id: int) -> int:
    """Draft the run's items that have no result yet. Safe to run twice, or after a crash."""
    run = runs.execute_run(run_id)
    return run.results.count()


@shared_task
def recover_stalled_evaluations() -> int:
    """Resend runs whose worker went silent (or whose message was lost)."""
    ids = runs.recover_stalled_runs()
    for run_id in ids:
        run_evaluation.delay(run_id)
    return len(ids)
