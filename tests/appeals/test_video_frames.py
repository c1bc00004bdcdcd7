"""Frames of a stored video (appeals/media/video.py) within its documented limits: how many,
from how much of the video, how large, and how much decoding."""

from __future__ import annotations

import pytest

from appeals.media.video import VideoLimits, VideoUnreadable, sample_frames
from tests.videos import mp4_bytes


def test_frames_are_spread_over_the_video_earliest_first():
    frames = sample_frames(mp4_bytes(seconds=4), VideoLimits(max_frames=4))
    assert [f.seconds for f in frames] == [0.5, 1.5, 2.5, 3.5]
    assert all(f.image.size == (96, 64) for f in frames)


def test_only_the_first_max_seconds_are_sampled():
    frames = sample_frames(mp4_bytes(seconds=20), VideoLimits(max_frames=3, max_seconds=6))
    assert len(frames) == 3 and max(f.seconds for f in frames) < 6


def test_a_frame_over_the_pixel_limit_is_refused():
    with pytest.raises(VideoUnreadable, match="over the limit"):
        sample_frames(mp4_bytes(seconds=1), VideoLimits(max_pixels=96 * 64 - 1))


def test_decoding_is_capped_whatever_the_key_frames():
    # A budget of one frame per sample: each sample is the key frame it seeked to.
    frames = sample_frames(mp4_bytes(seconds=6), VideoLimits(max_frames=3, max_decoded=3))
    assert 1 <= len(frames) <= 3


@pytest.mark.parametrize(
    "data", [b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64, b"not a video at all"]
)
def test_bytes_that_are_no_video_are_named_unreadable(data):
    with pytest.raises(VideoUnreadable):
        sample_frames(data)
