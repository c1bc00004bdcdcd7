"""The blurred preview a reviewer sees before choosing to look: made here, from our copy.

Blurring on the server (not with CSS) means the page never holds the original until "Reveal":
a reviewer who opens the case sees shapes and colours, and the browser has received nothing more.
Videos get a poster saying the video is stored: no frame is extracted (that needs ffmpeg).
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFilter, ImageOps

PREVIEW_SIZE = (480, 480)
POSTER_SIZE = (480, 270)


def blurred_preview(data: bytes, *, grayscale: bool = True) -> bytes:
    """A small, strongly blurred JPEG of the image (first frame of an animation)."""
    with Image.open(io.BytesIO(data)) as source:
        source.seek(0)
        image = ImageOps.exif_transpose(source).convert("RGB")
    image.thumbnail(PREVIEW_SIZE)
    width, height = image.size
    # Down to a few dozen pixels and back up, then a wide blur: no text or face survives.
    tiny = image.resize((max(1, width // 16), max(1, height // 16)), Image.Resampling.BOX)
    image = tiny.resize((width, height), Image.Resampling.BILINEAR)
    image = image.filter(ImageFilter.GaussianBlur(radius=max(8, max(width, height) // 24)))
    if grayscale:
        image = ImageOps.grayscale(image)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()


def video_poster(*, host: str = "") -> bytes:
    """A plain poster for a stored video: what it is and how to see it, no frame of it."""
    image = Image.new("RGB", POSTER_SIZE, "#2d3440")
    draw = ImageDraw.Draw(image)
    lines = ["Video stored", "Reveal to play our copy"] + ([f"from {host}"] if host else [])
    y = 100
    for line in lines:
        width = draw.textlength(line, font_size=22)
        draw.text(((POSTER_SIZE[0] - width) / 2, y), line, fill="#e9ecef", font_size=22)
        y += 34
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
