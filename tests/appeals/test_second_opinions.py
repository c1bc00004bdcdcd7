"""Second opinions (appeals/second_opinions/): asked after intake for the models a policy
configures, stored once per case and model with the verdict, the categories and the mapped
rules, or the named reason there is none; transient failures tried again; a real worker on the
default queue against a stand-in server."""

from __future__ import annotations

import time

import pytest

from appeals.models import SecondOpinion
from appeals.second_opinions import services
from policies.models import SecondOpinionSetting
from tests.builders import flag, make_policy
from tests.standin_server import StandInServer

pytestmark = pytest.mark.django_db

SPAM = "Buy gold rings here!"
BENIGN = "Hi Sam, here is the report."


def configure(policy_version, server, **fields) -> SecondOpinionSetting:
    values = {
        "policy_id": policy_version.policy_id,
        "adapter": "llama_guard_3",
        "base_url": server.base_url,
        "model": "meta-llama/Llama-Guard-3-8B",
        "timeout_seconds": 5,
        "category_rules": {"S2": ["SP2.b", "SP3.a"]},
        **fields,
    }
    setting = SecondOpinionSetting(**values)
    setting.full_clean()
    setting.save()
    return setting


def test_an_opinion_is_stored_with_its_verdict_categories_mapped_rules_and_model(
    platform, spam_policy
):
    with StandInServer(mode="llama_guard") as server:
        setting = configure(spam_policy, server)
        spam, benign = flag(platform, content=SPAM), flag(platform, content=BENIGN)
        outcome = services.ask_second_opinions(
            [(spam.id, setting.id), (benign.id, setting.id)], last_try=False
        )
    assert outcome.retry == [] and len(outcome.stored) == 2
    opinion = SecondOpinion.objects.get(case=spam)
    assert (opinion.verdict, opinion.categories, opinion.rule_ids) == (
        "violating",
        ["S2"],
        ["SP2.b", "SP3.a"],
    )
    assert (
        opinion.model_name == "meta-llama/Llama-Guard-3-8B" and opinion.adapter == "llama_guard_3"
    )
    assert opinion.raw_answer == "unsafe\nS2" and opinion.failure_reason == ""
    assert opinion.attempts == 1
    assert SecondOpinion.objects.get(case=benign).verdict == "not_violating"


def test_a_message_delivered_twice_stores_one_opinion_and_asks_once(platform, spam_policy):
    with StandInServer(mode="llama_guard") as server:
        setting = configure(spam_policy, server)
        case = flag(platform, content=SPAM)
        first = services.ask_second_opinions([(case.id, setting.id)], last_try=False)
        second = services.ask_second_opinions([(case.id, setting.id)], last_try=False)
    assert len(first.stored) == 1 and second.stored == []
    assert server.requests == 1
    assert SecondOpinion.objects.filter(case=case).count() == 1


def test_two_workers_racing_on_one_pair_store_one_row(platform, spam_policy):
    """Both asked the model (neither saw the other's row); the unique (case, setting) keeps the
    first insert and the second is a no-op, inside its own savepoint."""
    with StandInServer(mode="llama_guard") as server:
        setting = configure(spam_policy, server)
        case = flag(platform, content=SPAM)
        opinion = services._ask(case, setting)
    known = {"SP2.b", "SP3.a"}
    assert services._store(case, setting, opinion, known_rules=known) is not None
    assert services._store(case, setting, opinion, known_rules=known) is None
    assert SecondOpinion.objects.filter(case=case, setting=setting).count() == 1


def test_a_transient_failure_is_retried_and_stored_with_its_reason_only_on_the_last_try(
    platform, spam_policy
):
    with StandInServer(mode="qwen3guard", status=503) as server:
        setting = configure(
            spam_policy,
            server,
            adapter="qwen3guard",
            category_rules={},
            model="Qwen/Qwen3Guard-Gen-4B",
        )
        case = flag(platform, content=SPAM)
        early = services.ask_second_opinions([(case.id, setting.id)], last_try=False)
        assert early.retry == [(case.id, setting.id)] and not SecondOpinion.objects.exists()
        last = services.ask_second_opinions([(case.id, setting.id)], last_try=True)
    assert last.retry == []
    opinion = SecondOpinion.objects.get()
    assert (opinion.verdict, opinion.failure_reason) == ("", "unreachable")
    assert "HTTP 503" in opinion.failure_detail


def test_a_malformed_answer_is_stored_at_once_with_its_reason_and_the_raw_text(
    platform, spam_policy
):
    with StandInServer(mode="nemoguard", answer="I think it is fine.") as server:
        setting = configure(
            spam_policy, server, adapter="nemoguard", category_rules={}, model="nemoguard-8b"
        )
        case = flag(platform, content=SPAM)
        outcome = services.ask_second_opinions([(case.id, setting.id)], last_try=False)
    assert outcome.retry == []
    opinion = SecondOpinion.objects.get()
    assert opinion.failure_reason == "malformed_answer"
    assert opinion.raw_answer == "I think it is fine."


def test_an_unset_api_key_variable_is_not_configured_and_the_server_is_not_asked(
    platform, spam_policy, monkeypatch
):
    monkeypatch.delenv("GUARD_KEY_FOR_TEST", raising=False)
    with StandInServer(mode="llama_guard") as server:
        setting = configure(spam_policy, server, api_key_env="GUARD_KEY_FOR_TEST")
        case = flag(platform, content=SPAM)
        services.ask_second_opinions([(case.id, setting.id)], last_try=False)
        assert server.requests == 0
        monkeypatch.setenv("GUARD_KEY_FOR_TEST", "secret-123")
        other = flag(platform, content=SPAM)
        services.ask_second_opinions([(other.id, setting.id)], last_try=False)
    failed = SecondOpinion.objects.get(case=case)
    assert failed.failure_reason == "not_configured"
    assert "GUARD_KEY_FOR_TEST" in failed.failure_detail
    assert SecondOpinion.objects.get(case=other).verdict == "violating"
    assert "secret-123" not in failed.failure_detail + failed.raw_answer


def test_a_case_under_an_older_version_keeps_only_the_rules_its_version_defines(platform):
    old = make_policy(text="# Spam (#SP)\n\n## Ads (SP2)\nSP2.b Irrelevant ads\n")
    case = flag(platform, content=SPAM)
    assert case.policy_version_id == old.id
    newer = make_policy()  # v2 defines SP3.a as well; the mapping is checked against it
    with StandInServer(mode="llama_guard") as server:
        setting = configure(newer, server)
        services.ask_second_opinions([(case.id, setting.id)], last_try=False)
    assert SecondOpinion.objects.get(case=case).rule_ids == ["SP2.b"]


def test_intake_asks_the_enabled_models_of_the_cases_policy_after_commit(
    platform, spam_policy, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(services, "enqueue_second_opinions", sent.append)
    with StandInServer(mode="llama_guard") as server:
        on = configure(spam_policy, server)
        configure(spam_policy, server, model="switched-off", enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        case = flag(platform, content=SPAM)
    assert sent == [[(case.id, on.id)]]
    other = make_policy(slug="other", name="Other")
    with django_capture_on_commit_callbacks(execute=True):
        flag(platform, content=SPAM, policy="other")
    assert len(sent) == 1, other  # a policy without second opinions sends nothing


def test_bulk_intake_asks_for_every_new_case(
    platform, spam_policy, django_capture_on_commit_callbacks, monkeypatch
):
    from appeals.intake import bulk as bulk_intake
    from appeals.intake.schemas import ItemIn

    sent = []
    monkeypatch.setattr(services, "enqueue_second_opinions", sent.append)
    with StandInServer(mode="llama_guard") as server:
        setting = configure(spam_policy, server)
    payloads = [ItemIn(external_id=f"b-{i}", policy="spam", content=SPAM) for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = bulk_intake.receive_items_bulk(platform=platform, payloads=payloads, invalid={})
    case_ids = sorted(o.case.id for o in outcomes)
    assert sorted(sent[0]) == [(case_id, setting.id) for case_id in case_ids]


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_a_real_worker_asks_after_intake_retries_a_transient_failure_and_stores_once(
    platform, spam_policy, tmp_path
):
    import redis
    from django.conf import settings
    from django.db import close_old_connections, connection

    from appeals.second_opinions.tasks import second_opinions
    from tests.workers import celery_publishing_to, celery_worker, wait_for

    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    # The first three requests (the client's own three attempts) answer 503: the task retries.
    with StandInServer(mode="shieldgemma", fail_first=3) as server:
        setting = configure(
            spam_policy,
            server,
            adapter="shieldgemma",
            model="google/shieldgemma-2b",
            category_rules={"Dangerous Content": ["SP3.a"]},
        )
        with celery_publishing_to(url):
            case = flag(platform, content="You won an iPhone, click here")

        def stored():
            close_old_connections()
            return SecondOpinion.objects.filter(case=case).first()

        env = {"SECOND_OPINION_RETRY_SECONDS": "1"}
        with celery_worker(broker_url=url, queues="default", env=env, log_path=tmp_path / "w.log"):
            opinion = wait_for(stored, timeout=120, what="the second opinion")
            asked = server.requests
            # The same message again (a redelivery): nothing new is asked or stored.
            with celery_publishing_to(url):
                second_opinions.delay([[case.id, setting.id]])
            log = tmp_path / "w.log"

            def done_runs():
                return [
                    line
                    for line in log.read_text().splitlines()
                    if "appeals.tasks.second_opinions[" in line and "succeeded" in line
                ]

            runs = wait_for(lambda: len(done_runs()) >= 2 and done_runs(), timeout=60, what="rerun")
    redis.Redis.from_url(url).flushdb()
    assert (opinion.verdict, opinion.categories, opinion.rule_ids) == (
        "violating",
        ["Dangerous Content"],
        ["SP3.a"],
    )
    assert asked == 4 and server.requests == 4  # three 503s, one answer; none for the redelivery
    assert runs[0].endswith(": 1") and runs[1].endswith(": 0")  # stored once, then nothing
    assert SecondOpinion.objects.filter(case=case).count() == 1


def test_a_server_answering_at_great_length_is_kept_within_bounds(platform, spam_policy):
    with StandInServer(mode="cope", answer="0" + " padding" * 10_000) as server:
        setting = configure(spam_policy, server, adapter="cope", category_rules={}, model="cope")
        case = flag(platform, content=SPAM)
        services.ask_second_opinions([(case.id, setting.id)], last_try=False)
    opinion = SecondOpinion.objects.get()
    assert opinion.failure_reason == "malformed_answer"
    assert len(opinion.raw_answer) == services.MAX_RAW_CHARS
    assert len(opinion.failure_detail) <= services.MAX_DETAIL_CHARS


def test_the_task_goes_to_a_queue_the_quickstart_worker_consumes():
    import re
    from pathlib import Path

    from appeals.second_opinions.tasks import second_opinions
    from reviewer.celery import app

    assert second_opinions.name == "appeals.tasks.second_opinions"
    queue = app.amqp.router.route({}, second_opinions.name)["queue"].name
    quickstart = (Path(__file__).resolve().parents[2] / "scripts" / "quickstart.sh").read_text()
    consumed = re.search(r"worker --queues (\S+)", quickstart).group(1).split(",")
    assert queue == "default" and queue in consumed
    app.loader.import_default_modules()
    assert second_opinions.name in app.tasks


def test_the_models_are_asked_in_parallel(platform, spam_policy):
    with StandInServer(mode="llama_guard", latency=0.5) as server:
        setting = configure(spam_policy, server)
        cases = [flag(platform, content=SPAM) for _ in range(6)]
        started = time.monotonic()
        outcome = services.ask_second_opinions([(c.id, setting.id) for c in cases], last_try=False)
        took = time.monotonic() - started
    assert len(outcome.stored) == 6 and server.peak > 1
    assert took < 6 * 0.5 / 2, took
