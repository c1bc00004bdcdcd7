"""The fast tier (appeals/triage/): signals stored with their model's name and version, the
per-queue priority rules, the deep-check threshold, the queue column and filter, the export
columns, and a real worker on the default queue scoring a case after intake."""

from __future__ import annotations

import base64
import io
import json
from importlib import metadata

import pytest
from django.utils import timezone
from PIL import Image

from appeals.media import services as media
from appeals.models import (
    AuditEvent,
    Case,
    DeepCheck,
    DeepCheckSetting,
    Item,
    MediaAsset,
    PriorityRule,
    Recommendation,
    Signal,
)
from appeals.review.queueing import claim_next_case
from appeals.triage import services as triage
from tests.builders import appeal, flag

pytestmark = pytest.mark.django_db

OFFENSIVE = "You are a fucking idiot and everyone hates your stupid face"
BENIGN = "The weather in the park was lovely this afternoon and the children played"


def test_text_signals_are_stored_with_the_model_name_and_version(platform, spam_policy):
    case = flag(platform, content=OFFENSIVE)
    triage.triage_item(case.item_id)
    offensive = Signal.objects.get(item_id=case.item_id, kind="offensive")
    language = Signal.objects.get(item_id=case.item_id, kind="language")
    assert offensive.score > 0.8
    assert (offensive.model_name, offensive.model_version) == (
        "alt-profanity-check",
        metadata.version("alt-profanity-check"),
    )
    assert (language.label, language.model_name) == ("en", "lingua-language-detector")
    assert language.model_version == metadata.version("lingua-language-detector")
    assert Item.objects.get(id=case.item_id).language == "en"
    event = AuditEvent.objects.get(case=case, kind=AuditEvent.Kind.TRIAGED)
    assert event.source == AuditEvent.Source.WORKER
    assert event.data["signals"]["offensive"]["model"].startswith("alt-profanity-check ")


def test_a_benign_text_scores_low_and_a_repeated_message_changes_nothing(platform, spam_policy):
    case = flag(platform, content=BENIGN)
    triage.triage_item(case.item_id)
    triage.triage_item(case.item_id)
    assert Signal.objects.get(item_id=case.item_id, kind="offensive").score < 0.5
    assert AuditEvent.objects.filter(case=case, kind=AuditEvent.Kind.TRIAGED).count() == 1


def test_priority_rules_put_a_trusted_flaggers_high_score_first_and_bring_it_due(
    platform, spam_policy, alice
):
    PriorityRule.objects.create(
        queue="flags",
        kind="offensive",
        min_score=0.8,
        source="trusted_flagger",
        priority=20,
        due_within=timezone.timedelta(hours=1),
    )
    older_user_report = flag(platform, content=OFFENSIVE)
    trusted_benign = flag(platform, content=BENIGN, source="trusted_flagger")
    trusted_offensive = flag(platform, content=OFFENSIVE, source="trusted_flagger")
    before = {c.id: (c.priority, c.due_at) for c in (older_user_report, trusted_benign)}
    first_before = Case.objects.in_queue("flags").queue_order().first()
    assert first_before.id != trusted_offensive.id
    for case in (older_user_report, trusted_benign, trusted_offensive):
        triage.triage_item(case.item_id)
    raised = Case.objects.get(id=trusted_offensive.id)
    assert raised.priority == 20
    assert raised.due_at <= timezone.now() + timezone.timedelta(hours=1)
    for case_id, (priority, due_at) in before.items():
        assert Case.objects.values_list("priority", "due_at").get(id=case_id) == (priority, due_at)
    assert claim_next_case(reviewer=alice, queue="flags").id == trusted_offensive.id
    event = AuditEvent.objects.get(case=raised, kind=AuditEvent.Kind.TRIAGED)
    assert event.data["priority"] == [10, 20]


def test_a_policy_drafting_only_high_scores_waits_for_the_fast_tier(
    platform, spam_policy, client, alice
):
    DeepCheckSetting.objects.create(
        policy=spam_policy.policy, mode=DeepCheck.ABOVE_THRESHOLD, threshold=0.7
    )
    benign = flag(platform, content=BENIGN)
    offensive = flag(platform, content=OFFENSIVE)
    assert not Recommendation.objects.filter(case__in=[benign, offensive]).exists()
    triage.triage_item(benign.item_id)
    triage.triage_item(offensive.item_id)
    assert not Recommendation.objects.filter(case=benign).exists()
    assert Recommendation.objects.get(case=offensive).status == Recommendation.Status.PENDING

    client.force_login(alice)
    page = client.get(f"/cases/{benign.id}/").content.decode()
    assert "No deep check." in page
    assert "only on cases the fast tier scores at 0.70 or above" in page
    assert "highest score is 0." in page and "alt-profanity-check" in page
    assert "No deep check." not in client.get(f"/cases/{offensive.id}/").content.decode()


def test_a_policy_without_a_setting_drafts_every_case_at_intake(platform, spam_policy):
    case = flag(platform, content=BENIGN)
    assert Recommendation.objects.filter(case=case).count() == 1


def _png_data_url() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (40, 120, 200)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_images_are_scored_for_nudity_on_our_stored_copy_once_fetched(
    platform, spam_policy, media_storage
):
    case = flag(platform, content=_png_data_url(), content_type="image")
    with pytest.raises(triage.MediaNotStoredYet):
        triage.triage_item(case.item_id)
    asset = MediaAsset.objects.get(item_id=case.item_id)
    assert media.fetch_item_media(asset.id).status == "stored"
    triage.triage_item(case.item_id)
    nudity = Signal.objects.get(item_id=case.item_id, kind="nudity")
    assert (nudity.model_name, nudity.model_version) == ("nudenet", metadata.version("nudenet"))
    assert nudity.score == 0.0 and nudity.details == {"detections": []}
    assert not Signal.objects.filter(item_id=case.item_id, kind="offensive").exists()


def test_the_queue_shows_the_score_and_filters_by_it_and_by_language(
    platform, spam_policy, client, alice
):
    offensive = flag(platform, content=OFFENSIVE)
    benign = flag(platform, content=BENIGN)
    unscored = flag(platform, content="Unscored text for the queue")
    triage.triage_item(offensive.item_id)
    triage.triage_item(benign.item_id)
    client.force_login(alice)
    page = client.get("/queues/flags/").content.decode()
    assert "Fast tier" in page and "<code>en</code>" in page

    def listed(query):
        html = client.get(f"/queues/flags/?{query}").content.decode()
        return {c.id for c in (offensive, benign, unscored) if f'href="/cases/{c.id}/"' in html}

    assert listed("fast_tier=offensive") == {offensive.id}
    assert listed("fast_tier=unscored") == {unscored.id}
    assert listed("language=en") == {offensive.id, benign.id}
    assert listed("language=unknown") == {unscored.id}
    assert listed("fast_tier=bogus") == {offensive.id, benign.id, unscored.id}


def test_the_export_carries_the_language_and_each_score_with_its_model(
    platform, spam_policy, alice
):
    from appeals.disclosure.exports import Export, ExportFilters
    from tests.builders import decide

    scored = flag(platform, content=OFFENSIVE)
    triage.triage_item(scored.item_id)
    unscored = flag(platform, content=BENIGN)
    decide(alice, scored, outcome="not_violating")
    decide(alice, unscored, outcome="not_violating")
    export = Export(fmt="jsonl", filters=ExportFilters(), actor_label="test")
    rows = {row["case_id"]: row for row in map(json.loads, "".join(export.chunks()).splitlines())}
    row = rows[scored.id]
    assert row["language"] == "en" and row["offensive_score"] > 0.8
    assert (
        row["offensive_model"] == f"alt-profanity-check {metadata.version('alt-profanity-check')}"
    )
    assert (row["nudity_score"], row["nudity_label"], row["nudity_model"]) == (None, "", "")
    assert list(row)[-1] == "notice"
    blank = rows[unscored.id]
    assert (blank["language"], blank["offensive_score"], blank["offensive_model"]) == ("", None, "")


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_a_real_worker_on_the_default_queue_scores_text_and_stored_images_after_intake(
    platform, spam_policy, media_storage, tmp_path
):
    import redis
    from django.conf import settings
    from django.db import close_old_connections, connection

    from tests.workers import celery_worker, wait_for

    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    text = flag(platform, content=OFFENSIVE)
    image = flag(platform, content=_png_data_url(), content_type="image")

    def scored(item_id, kind):
        def check():
            close_old_connections()
            return Signal.objects.filter(item_id=item_id, kind=kind).first()

        return check

    env = {"MEDIA_STORAGE_OPTIONS": json.dumps({"location": str(media_storage)})}
    # The quickstart's worker consumes "default,gpu"; the fast tier needs only "default".
    with celery_worker(broker_url=url, queues="default", env=env, log_path=tmp_path / "w.log"):
        offensive = wait_for(scored(text.item_id, "offensive"), timeout=120, what="text score")
        nudity = wait_for(scored(image.item_id, "nudity"), timeout=120, what="nudity signal")
    redis.Redis.from_url(url).flushdb()
    assert offensive.score > 0.8 and offensive.model_name == "alt-profanity-check"
    assert nudity.model_name == "nudenet" and "detections" in nudity.details
    assert Item.objects.get(id=text.item_id).language == "en"


def test_an_appeal_on_an_item_scored_before_is_triaged_and_gated_by_the_same_scores(
    platform, spam_policy
):
    DeepCheckSetting.objects.create(
        policy=spam_policy.policy, mode=DeepCheck.ABOVE_THRESHOLD, threshold=0.7
    )
    PriorityRule.objects.create(queue="appeals", kind="offensive", min_score=0.8, priority=7)
    original = flag(platform, content=OFFENSIVE, external_id="post-9")
    triage.triage_item(original.item_id)
    complaint = appeal(platform, item_external_id="post-9")
    assert not Recommendation.objects.filter(case=complaint).exists()
    triage.triage_item(complaint.item_id)
    assert Recommendation.objects.filter(case=complaint).count() == 1
    assert Case.objects.get(id=complaint.id).priority == 7
    assert AuditEvent.objects.filter(case=complaint, kind=AuditEvent.Kind.TRIAGED).count() == 1
    assert AuditEvent.objects.filter(case=original, kind=AuditEvent.Kind.TRIAGED).count() == 1
    assert Signal.objects.filter(item_id=original.item_id).count() == 2  # scored once


def test_content_the_fast_tier_cannot_score_still_gets_the_deep_check(platform, spam_policy):
    DeepCheckSetting.objects.create(
        policy=spam_policy.policy, mode=DeepCheck.ABOVE_THRESHOLD, threshold=0.7
    )
    video = flag(platform, content="(a video, no address)", content_type="video")
    assert not Recommendation.objects.filter(case=video).exists()
    triage.triage_item(video.item_id)
    assert Recommendation.objects.filter(case=video).count() == 1
    event = AuditEvent.objects.get(case=video, kind=AuditEvent.Kind.TRIAGED)
    assert event.data["deep_check"] == "requested_unscored"


def test_media_that_could_not_be_stored_is_said_so_on_the_panel_not_scored_forever(
    platform, spam_policy, media_storage
):
    case = flag(platform, content="data:image/png;base64,bm90IGFuIGltYWdl", content_type="image")
    asset = MediaAsset.objects.get(item_id=case.item_id)
    assert triage.fast_tier_panel(case).pending  # still being fetched
    assert media.fetch_item_media(asset.id).status == "failed"  # the bytes are not an image
    assert triage.fast_tier_panel(case).pending  # not triaged yet

    triage.triage_item(case.item_id)
    panel = triage.fast_tier_panel(case)
    assert not panel.pending and not panel.signals
    assert panel.unscored_reason.startswith("The image could not be stored (")
    assert "no fast-tier model looked at it" in panel.unscored_reason
