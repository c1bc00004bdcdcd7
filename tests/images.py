"""Small safe images for the fast tier's tests: solid colours, made on the fly."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png_data_url(colour=(40, 120, 200), size=(64, 48)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
