"""The demo's media cases: drawn pictures and a short video, stored through the media storage as
an upload is, blurred previews beside them, scored by NudeNet once the worker runs, and loaded
once however often the demo is loaded."""

from __future__ import annotations

import pytest
from PIL import Image

from appeals.demo import load_demo
from appeals.demo_media import DEMO_MEDIA
from appeals.media import services as media
from appeals.models import Case, MediaAsset, Signal
from appeals.triage import services as triage

pytestmark = pytest.mark.django_db


def test_the_demo_has_stored_blurred_media_cases_scored_by_the_fast_tier(roles, media_storage):
    load_demo(cases=6, password="demo-password-1")
    ids = [row[0] for row in DEMO_MEDIA]
    cases = list(Case.objects.filter(external_id__in=ids).select_related("item"))
    assert sorted(c.external_id for c in cases) == sorted(ids)
    for case in cases:
        asset = MediaAsset.objects.get(item=case.item)
        assert asset.status == "stored" and asset.kind == case.item.content_type
        with media.open_stored(asset.preview) as preview:
            assert Image.open(preview).format == "JPEG"
        assert asset.source_url == "demo" and not asset.source_host
    triage.triage_items([c.item_id for c in cases])  # what the worker does after intake
    for case in cases:
        nudity = Signal.objects.get(item_id=case.item_id, kind="nudity")
        assert nudity.model_name == "nudenet" and nudity.score < 0.5
    video = next(c for c in cases if c.item.content_type == "video")
    assert len(Signal.objects.get(item_id=video.item_id, kind="nudity").details["frames"]) == 4

    again = load_demo(cases=6, password="demo-password-1")
    assert again.cases_created == 0
    assert MediaAsset.objects.count() == len(DEMO_MEDIA)
