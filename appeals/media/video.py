"""A few frames of a stored video, for the poster a reviewer sees and for the image classifiers.

PyAV (the `av` wheel, which ships its own ffmpeg libraries) opens the container from our stored
bytes in memory; nothing is written to disk and nothing is fetched. The video came from a
platform, so it is treated like any other untrusted input and bounded before anything decodes:

- frames: at most `max_frames` (default 4), spread evenly over the part of the video we look at;
- duration: only the first `max_seconds` (default 600 s) are sampled; a longer video is still
  stored and shown, its later part is simply not scored;
- size: a frame over `max_pixels` (the same limit as images) is refused;
- work: each sample seeks to the key frame before it and decodes forward; at most
  `max_decoded` frames are decoded in all (default 240), so a video with few key frames cannot
  make us decode everything between them.

Framework-free: limits come in as a `VideoLimits`, frames go out as Pillow images.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image


class VideoUnreadable(Exception):
    """The bytes do not open as a video with a decodable video stream within the limits."""


@dataclass(frozen=True)
class VideoLimits:
    max_frames: int = 4
    max_seconds: float = 600.0
    max_pixels: int = 40_000_000
    max_decoded: int = 240


@dataclass(frozen=True)
class Frame:
    seconds: float  # where in the video the frame is
    image: Image.Image


def _targets(duration: float | None, limits: VideoLimits) -> list[float]:
    """The times to sample: evenly inside the first `max_seconds`, never the very first black
    frame of a fade-in when there is more than one to take."""
    span = min(duration or 0.0, limits.max_seconds)
    if span <= 0:
        return [0.0]
    count = max(1, limits.max_frames)
    return [span * (index + 0.5) / count for index in range(count)]


def sample_frames(data: bytes, limits: VideoLimits | None = None) -> list[Frame]:
    """Up to `limits.max_frames` frames of the video in `data`, earliest first."""
    import av

    limits = limits or VideoLimits()
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as error:
        raise VideoUnreadable(f"the video could not be opened: {error}") from None
    try:
        streams = container.streams.video
        if not streams:
            raise VideoUnreadable("the file has no video stream")
        stream = streams[0]
        width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
        if width * height > limits.max_pixels:
            raise VideoUnreadable(
                f"{width}×{height} pixels is over the limit of {limits.max_pixels:,}"
            )
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return _decode_at(container, stream, _targets(duration, limits), limits)
    except av.FFmpegError as error:
        raise VideoUnreadable(f"the video could not be decoded: {error}") from None
    finally:
        container.close()


def _decode_at(container, stream, targets: list[float], limits: VideoLimits) -> list[Frame]:
    """For each target time: seek to the key frame before it, then decode forward to the first
    frame at or after it. Decoding is capped at `max_decoded` frames in all, shared between the
    targets, so a video with few key frames cannot make us decode it whole; a target whose share
    runs out takes the last frame decoded before it."""
    import av

    stream.thread_type = "AUTO"
    budget = max(1, limits.max_decoded // max(1, len(targets)))
    frames: list[Frame] = []
    for target in targets:
        if stream.time_base and target > 0:
            try:
                container.seek(int(target / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
        picked = None
        for decoded, frame in enumerate(container.decode(stream), start=1):
            seconds = float(frame.time) if frame.time is not None else 0.0
            picked = (seconds, frame)
            if seconds >= target or decoded >= budget:
                break
        if picked is not None and (not frames or frames[-1].seconds < picked[0]):
            frames.append(Frame(picked[0], picked[1].to_image()))
    if not frames:
        raise VideoUnreadable("the video has no frame that decodes")
    return frames
