"""The blurred preview a reviewer sees before choosing to look: made here, from our copy.

Blurring on the server (not with CSS) means the page never holds the original until "Reveal":
a reviewer who opens the case sees shapes and colours, and the browser has received nothing more.
Videos get a poster made the same way from a frame sampled with PyAV (`video.py`), labelled as
a video; one whose frames cannot be decoded gets a plain poster that says so.

A reviewer may prefer no blur or colour (reviewer/preferences.py): `preview_image` makes those
variants, still small and re-encoded on the server, so the original is only ever sent on reveal.
"""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFilter, ImageOps

PREVIEW_SIZE = (480, 480)
POSTER_SIZE = (480, 270)


def open_image(data: bytes) -> Image.Image:
    """The image in `data` (first frame of an animation), upright and in RGB."""
    with Image.open(io.BytesIO(data)) as source:
        source.seek(0)
        return ImageOps.exif_transpose(source).convert("RGB")


def blurred_preview(data: bytes, *, grayscale: bool = True) -> bytes:
    """A small, strongly blurred JPEG of the image (first frame of an animation)."""
    return preview_image(open_image(data), blur=True, grayscale=grayscale)


def preview_image(
    image: Image.Image, *, blur: bool = True, grayscale: bool = True, label: str = ""
) -> bytes:
    """A small JPEG of `image`: blurred unless `blur` is False, grey if `grayscale`, with an
    optional caption band (a video's poster says it is a video)."""
    image = image.convert("RGB")
    image.thumbnail(PREVIEW_SIZE)
    if blur:
        image = _blur(image)
    if label:
        _caption(image, label)
    if grayscale:
        image = ImageOps.grayscale(image)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=70)
    return out.getvalue()


def _blur(image: Image.Image) -> Image.Image:
    width, height = image.size
    # Down to a few dozen pixels and back up, then a wide blur: no text or face survives.
    tiny = image.resize((max(1, width // 16), max(1, height // 16)), Image.Resampling.BOX)
    image = tiny.resize((width, height), Image.Resampling.BILINEAR)
    return image.filter(ImageFilter.GaussianBlur(radius=max(8, max(width, height) // 24)))


def _caption(image: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(image)
    size = max(12, image.height // 12)
    band = size + 12
    draw.rectangle([0, image.height - band, image.width, image.height], fill="#2d3440")
    width = draw.textlength(text, font_size=size)
    draw.text(
        ((image.width - width) / 2, image.height - band + 6), text, fill="#e9ecef", font_size=size
    )


VIDEO_LABEL = "Video · reveal to play our copy"


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
