from reviewer.celery import app


def _queue_of(task_name: str) -> str:
    route = app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_drafts_go_to_the_gpu_queue():
    from appeals.tasks import draft_recommendations

    assert _queue_of(draft_recommendations.name) == "gpu"


def test_callbacks_and_the_recovery_sweep_stay_off_the_gpu_queue():
    from appeals.tasks import deliver_decision_callback, recover_stalled_drafts

    assert _queue_of(deliver_decision_callback.name) == "default"
    assert _queue_of(recover_stalled_drafts.name) == "default"
