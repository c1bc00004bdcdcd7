"""The demo's image and video cases: plainly harmless pictures drawn here with Pillow (a sunset,
a house, a sale banner, a few seconds of colour bars), so the quickstart shows media without a
network or a downloaded data set.

They enter exactly as a platform's upload does (`appeals.intake.uploads`): the bytes are sniffed,
stored through the media storage with their blurred preview, and the fast tier scores them on the
worker like any other image. Drawing is deterministic, so loading the demo again adds nothing.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw

from .intake import uploads
from .intake.schemas import ItemIn
from .models import AuditEvent, Item, Platform

SIZE = (640, 420)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def sunset() -> bytes:
    image = Image.new("RGB", SIZE)
    draw = ImageDraw.Draw(image)
    for y in range(SIZE[1]):  # sky from deep blue to orange
        t = y / SIZE[1]
        draw.line(
            [(0, y), (SIZE[0], y)], fill=(int(40 + 200 * t), int(60 + 90 * t), int(140 - 80 * t))
        )
    draw.ellipse([260, 170, 380, 290], fill=(255, 200, 80))
    draw.polygon(
        [(0, 300), (160, 230), (330, 310), (500, 240), (640, 300), (640, 420), (0, 420)],
        fill=(40, 90, 50),
    )
    draw.polygon(
        [(0, 360), (220, 320), (420, 370), (640, 330), (640, 420), (0, 420)], fill=(30, 70, 40)
    )
    return _png(image)


def house() -> bytes:
    image = Image.new("RGB", SIZE, (150, 200, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 320, 640, 420], fill=(90, 170, 80))
    draw.rectangle([200, 190, 440, 330], fill=(230, 210, 170))
    draw.polygon([(180, 195), (320, 90), (460, 195)], fill=(170, 60, 50))
    draw.rectangle([300, 250, 345, 330], fill=(110, 70, 40))
    for x in (225, 375):
        draw.rectangle([x, 215, x + 45, 255], fill=(200, 230, 250), outline=(90, 90, 90), width=3)
    draw.ellipse([500, 40, 580, 120], fill=(255, 230, 90))
    for x in (60, 110, 540):
        draw.rectangle([x + 12, 260, x + 22, 330], fill=(100, 70, 40))
        draw.ellipse([x - 15, 210, x + 50, 275], fill=(50, 130, 60))
    return _png(image)


def sale_banner() -> bytes:
    image = Image.new("RGB", SIZE, (250, 220, 40))
    draw = ImageDraw.Draw(image)
    draw.rectangle([20, 20, 620, 400], outline=(200, 30, 30), width=12)
    lines = [("MEGA SALE", 72), ("90% OFF GOLD RINGS", 40), ("DM now · limited stock!!!", 30)]
    y = 90
    for text, size in lines:
        width = draw.textlength(text, font_size=size)
        draw.text(((SIZE[0] - width) / 2, y), text, fill=(180, 20, 20), font_size=size)
        y += size + 40
    return _png(image)


def colour_bars() -> bytes:
    """Three seconds of colour bars with a moving white stripe, as an MP4 (PyAV)."""
    import av

    width, height, fps = 320, 180, 8
    colours = [(200, 60, 60), (60, 160, 80), (50, 90, 200), (230, 190, 40)]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(3 * fps):
            image = Image.new("RGB", (width, height))
            draw = ImageDraw.Draw(image)
            for bar in range(len(colours)):
                shift = (bar + index // fps) % len(colours)
                draw.rectangle([bar * 80, 0, bar * 80 + 80, height], fill=colours[shift])
            x = (index * 12) % width
            draw.rectangle([x, 0, x + 10, height], fill=(255, 255, 255))
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


# external id, policy, caption, content type, drawing
DEMO_MEDIA: list[tuple[str, str, str, str, Callable[[], bytes]]] = [
    ("demo-image-sunset", "graphic-violent-content", "Evening walk, no filter", "image", sunset),
    ("demo-image-house", "dangerous-content", "Our new place!", "image", house),
    ("demo-image-sale", "spam", "Best prices in town, DM me", "image", sale_banner),
    ("demo-video-bars", "graphic-violent-content", "(video post)", "video", colour_bars),
]


def load_demo_media(platform: Platform) -> int:
    """The demo's media cases; returns how many were created (0 when they are all here)."""
    have = set(
        Item.objects.filter(
            platform=platform, external_id__in=[row[0] for row in DEMO_MEDIA]
        ).values_list("external_id", flat=True)
    )
    created = 0
    for external_id, policy, caption, content_type, draw in DEMO_MEDIA:
        if external_id in have:
            continue
        payload = ItemIn(
            external_id=external_id,
            policy=policy,
            content=caption,
            content_type=content_type,
            source="user_report",
            author_id="user-media",
            reporter_id="reporter-3",
            metadata={"dataset": "demo-media", "drawn": draw.__name__},
        )
        upload = uploads.with_media(payload, draw(), field="media")
        result = uploads.receive_item_with_media(
            platform=platform, upload=upload, source=AuditEvent.Source.COMMAND, how="demo"
        )
        created += int(result.created)
    return created
