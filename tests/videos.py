"""Tiny safe videos for the media tests: a few seconds of moving colour bars, made on the fly
with PyAV (MPEG-4 Part 2 in an MP4 container: an encoder every ffmpeg build has)."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

COLOURS = [(200, 60, 60), (60, 160, 80), (50, 90, 200), (230, 190, 40)]


def mp4_bytes(*, seconds: int = 2, fps: int = 8, size: tuple[int, int] = (96, 64)) -> bytes:
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(seconds * fps):
            image = Image.new("RGB", size, COLOURS[(index // fps) % len(COLOURS)])
            draw = ImageDraw.Draw(image)
            x = (index * 4) % size[0]
            draw.rectangle([x, 10, x + 12, size[1] - 10], fill=(255, 255, 255))
            frame = av.VideoFrame.from_image(image)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
