"""The production image classifier of the fast tier: transformers' image-classification
pipeline on a configured model, run here on a tiny random ViT checkpoint built offline (no hub),
through the same code path the worker runs; and videos scored on their sampled frames."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from appeals.intake import uploads
from appeals.intake.schemas import ItemIn
from appeals.models import MediaAsset, Signal
from appeals.triage import classifiers
from appeals.triage import services as triage
from tests.videos import mp4_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory):
    """A random ViT image classifier with the labels of Falconsai/nsfw_image_detection, saved
    with save_pretrained beside its image processor: a checkpoint folder like a downloaded one."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(14)
    path = tmp_path_factory.mktemp("tiny-nsfw-vit")
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        id2label={0: "normal", 1: "nsfw"},
        label2id={"normal": 0, "nsfw": 1},
    )
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return str(path)


@pytest.fixture
def nsfw_model(settings, tiny_vit):
    settings.TRIAGE_IMAGE_CLASSIFIERS = ["nudenet", "transformers"]
    settings.TRIAGE_IMAGE_MODEL = tiny_vit
    settings.TRIAGE_IMAGE_UNSAFE_LABELS = ["nsfw"]
    return tiny_vit


def _png(colour=(200, 120, 40), size=(80, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def _upload(platform, external_id, data, content_type="image"):
    payload = ItemIn(
        external_id=external_id, policy="spam", content="(media post)", content_type=content_type
    )
    upload = uploads.with_media(payload, data, field="media")
    return uploads.receive_item_with_media(platform=platform, upload=upload).case


def test_the_pipeline_scores_an_image_with_the_unsafe_labels_probability(tiny_vit):
    model, results = classifiers.classify_images(
        [Image.new("RGB", (50, 40), (10, 200, 30))],
        model=tiny_vit,
        revision="main",
        unsafe_labels=["nsfw"],
    )
    (result,) = results
    assert set(result.scores) == {"normal", "nsfw"}
    assert sum(result.scores.values()) == pytest.approx(1.0, abs=1e-3)
    assert result.score == result.scores["nsfw"]
    assert result.label == max(result.scores, key=result.scores.get)
    assert model.name == "tiny-nsfw-vit0" or model.name.startswith("tiny-nsfw-vit")
    assert model.version.startswith("local-") and len(model.version) == 18


def test_an_image_gets_an_nsfw_signal_with_model_and_revision_beside_nudenet(
    platform, spam_policy, media_storage, nsfw_model
):
    case = _upload(platform, "img-1", _png())
    triage.triage_item(case.item_id)
    kinds = set(Signal.objects.filter(item_id=case.item_id).values_list("kind", flat=True))
    assert kinds == {"nudity", "nsfw"}
    nsfw = Signal.objects.get(item_id=case.item_id, kind="nsfw")
    expected_model, (expected,) = classifiers.classify_images(
        [Image.open(io.BytesIO(_png())).convert("RGB")],
        model=nsfw_model,
        revision="main",
        unsafe_labels=["nsfw"],
    )
    assert (nsfw.model_name, nsfw.model_version) == (expected_model.name, expected_model.version)
    assert nsfw.score == pytest.approx(expected.score, abs=1e-4)
    assert set(nsfw.details["scores"]) == {"normal", "nsfw"}


def test_a_model_that_cannot_load_fails_with_a_named_reason(settings, tmp_path):
    missing = tmp_path / "no-such-model"
    missing.mkdir()
    with pytest.raises(classifiers.ImageModelUnavailable) as refused:
        classifiers.image_pipeline(str(missing), "main")
    assert "no-such-model" in str(refused.value) and "could not be loaded" in str(refused.value)


def test_a_video_is_scored_on_its_sampled_frames(
    platform, spam_policy, media_storage, nsfw_model, settings
):
    settings.MEDIA_VIDEO_FRAMES = 3
    case = _upload(platform, "vid-1", mp4_bytes(seconds=3), content_type="video")
    assert MediaAsset.objects.get(item_id=case.item_id).kind == "video"
    triage.triage_item(case.item_id)
    nudity = Signal.objects.get(item_id=case.item_id, kind="nudity")
    nsfw = Signal.objects.get(item_id=case.item_id, kind="nsfw")
    for signal in (nudity, nsfw):
        frames = signal.details["frames"]
        assert len(frames) == 3
        assert [f["seconds"] for f in frames] == sorted(f["seconds"] for f in frames)
        assert signal.score == max(f["score"] for f in frames)
        assert signal.details["at_seconds"] in [f["seconds"] for f in frames]
    assert nudity.model_name == "nudenet"


def test_only_nudenet_runs_by_default(platform, spam_policy, media_storage):
    case = _upload(platform, "img-2", _png())
    triage.triage_item(case.item_id)
    assert list(Signal.objects.filter(item_id=case.item_id).values_list("kind", flat=True)) == [
        "nudity"
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_a_real_worker_scores_an_uploaded_video_with_both_classifiers(
    platform, spam_policy, media_storage, tiny_vit, tmp_path
):
    """The worker process imports transformers lazily, loads the configured model, and stores
    both signals for a video sent as a multipart upload to the API."""
    import json

    import redis
    from django.conf import settings
    from django.db import close_old_connections, connection
    from django.test import Client

    from appeals.intake import tokens
    from tests.workers import celery_worker, wait_for

    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    token = tokens.create_api_token(platform=platform, name="acme")[1]
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(
        "/api/v1/items/upload",
        {
            "item": json.dumps(
                {"external_id": "v-1", "policy": "spam", "content": "clip", "content_type": "video"}
            ),
            "media": SimpleUploadedFile("v.mp4", mp4_bytes(), "video/mp4"),
        },
    )
    assert response.status_code == 201, response.json()
    item_id = MediaAsset.objects.get().item_id

    def both_scored():
        close_old_connections()
        signals = {s.kind: s for s in Signal.objects.filter(item_id=item_id)}
        return signals if {"nudity", "nsfw"} <= set(signals) else None

    env = {
        "MEDIA_STORAGE_OPTIONS": json.dumps({"location": str(media_storage)}),
        "TRIAGE_IMAGE_CLASSIFIERS": "nudenet,transformers",
        "TRIAGE_IMAGE_MODEL": tiny_vit,
    }
    with celery_worker(broker_url=url, queues="default", env=env, log_path=tmp_path / "w.log"):
        # The task was sent at intake, before this worker (and its settings) existed.
        signals = wait_for(both_scored, timeout=180, what="both image signals")
    redis.Redis.from_url(url).flushdb()
    assert signals["nsfw"].model_version.startswith("local-")
    assert len(signals["nsfw"].details["frames"]) == 4
    assert signals["nudity"].model_name == "nudenet"
