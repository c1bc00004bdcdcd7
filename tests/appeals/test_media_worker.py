"""Media through a real Celery worker and Redis: intake enqueues on commit, the worker fetches
from the stand-in platform, stores our copy and preview, and records a refusal with its reason."""

from __future__ import annotations

import json

import pytest
import redis
from django.conf import settings
from django.core.files.storage import storages
from django.db import close_old_connections, connection

from appeals.models import MediaAsset
from tests.builders import flag
from tests.media_server import PNG
from tests.workers import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]


@pytest.fixture
def broker_url():
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


def _settled(item_id):
    def check():
        close_old_connections()
        return MediaAsset.objects.filter(item_id=item_id).exclude(status="pending").first()

    return check


def test_a_real_worker_stores_media_after_intake_and_refuses_a_forbidden_address(
    broker_url, platform, spam_policy, media_storage, platform_media, tmp_path
):
    good = flag(
        platform,
        content="(image post)",
        content_type="image",
        metadata={"url": platform_media.url("/p.png")},
    )
    internal = flag(
        platform,
        content="(image post)",
        content_type="image",
        # Loopback, but not the allowed port: refused before any connection.
        metadata={"image_url": "http://127.0.0.1:9/admin/p.png"},
    )
    env = {
        "MEDIA_FETCH_ALLOW": f"127.0.0.1:{platform_media.port}",
        "MEDIA_STORAGE_OPTIONS": json.dumps({"location": str(media_storage)}),
    }
    with celery_worker(
        broker_url=broker_url, queues="default", env=env, log_path=tmp_path / "worker.log"
    ):
        stored = wait_for(_settled(good.item_id), timeout=60, what="the fetched image")
        refused = wait_for(_settled(internal.item_id), timeout=60, what="the refused image")
    assert stored.status == "stored", stored.failure
    assert storages["media"].open(stored.original).read() == PNG
    assert len(platform_media.requests) == 1
    assert (refused.status, refused.failure_reason) == ("failed", "forbidden_destination")
    assert "loopback address 127.0.0.1" in refused.failure
