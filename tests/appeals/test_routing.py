from reviewer.celery import app


def _queue_of(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_drafts_go_to_the_gpu_queue():
    from appeals.drafts.tasks import draft_recommendations

    assert _queue_of(draft_recommendations.name) == "gpu"


def test_callbacks_and_the_recovery_sweep_stay_off_the_gpu_queue():
    from appeals.disclosure.tasks import deliver_decision_callback
    from appeals.drafts.tasks import recover_stalled_drafts

    assert _queue_of(deliver_decision_callback.name) == "default"
    assert _queue_of(recover_stalled_drafts.name) == "default"


def test_moved_tasks_keep_their_wire_names():
    """Task names are wire format: routes, the beat schedule and queued messages use them."""
    from django.conf import settings

    from appeals.disclosure.tasks import deliver_decision_callback
    from appeals.drafts.tasks import draft_recommendations, recover_stalled_drafts

    assert draft_recommendations.name == "appeals.tasks.draft_recommendations"
    assert recover_stalled_drafts.name == "appeals.tasks.recover_stalled_drafts"
    assert deliver_decision_callback.name == "appeals.tasks.deliver_decision_callback"
    names = {task.name for task in (draft_recommendations, deliver_decision_callback)}
    assert names <= set(settings.CELERY_TASK_ROUTES)
    beat = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert recover_stalled_drafts.name in beat
    app.loader.import_default_modules()
    assert {*names, recover_stalled_drafts.name} <= set(app.tasks)
