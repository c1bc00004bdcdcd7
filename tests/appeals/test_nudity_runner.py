"""Our runner of NudeNet's model (appeals/triage/nudity.py) gives NudeNet's own answers: the same
input blob from the same bytes, the same detections from the same model output, and the same
detections end to end. Only the session options, batching and a vectorised loop differ."""

from __future__ import annotations

import io

import nudenet.nudenet as upstream
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from appeals.triage.nudity import NudityRunner


@pytest.fixture(scope="module")
def runner():
    return NudityRunner(threads=1, batch_size=3)


@pytest.fixture(scope="module")
def nudenet_detector():
    return upstream.NudeDetector()


def _encoded(seed: int, size=(640, 480), fmt="JPEG", mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(12, 16, len(mode)), dtype=np.uint8)
    image = Image.fromarray(base, mode).resize(size, Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("size", "fmt", "mode"),
    [((640, 480), "JPEG", "RGB"), ((300, 700), "PNG", "RGB"), ((200, 120), "PNG", "RGBA")],
)
def test_the_input_blob_is_nudenets(runner, size, fmt, mode):
    data = _encoded(3, size, fmt, mode)
    blob, (pad_x, pad_y, width, height) = runner.preprocess(data)
    theirs = upstream._read_image(data, 320)
    assert np.array_equal(blob, theirs[0])
    assert (pad_x, pad_y, width, height) == (theirs[3], theirs[4], theirs[5], theirs[6])


@settings(max_examples=60, deadline=None)
@example(seed=817, width=709, height=1770)  # once differed: scale factors rounded in another order
@given(
    seed=st.integers(0, 10_000),
    width=st.integers(50, 2000),
    height=st.integers(50, 2000),
)
def test_the_detections_from_a_model_output_are_nudenets(runner, seed, width, height):
    """A made-up output with many candidates over the threshold, as a real busy image gives."""
    rng = np.random.default_rng(seed)
    output = rng.random((1, 4 + len(runner.labels), 2100), dtype=np.float32)
    output[0, :2] *= 320  # centres
    output[0, 2:4] *= 120  # sizes
    output[0, 4:] *= 0.35  # scores: some over 0.2, some under
    side = max(width, height)
    pad_x, pad_y = side - width, side - height
    ours = runner.postprocess(output, (pad_x, pad_y, width, height))
    theirs = upstream._postprocess(
        [output], pad_x, pad_y, side / width, side / height, width, height, 320, 320
    )
    assert ours == theirs
    assert ours  # the example does exercise the boxes


def test_end_to_end_and_batched_the_detections_are_nudenets(runner, nudenet_detector):
    images = [_encoded(seed) for seed in range(5)]
    assert runner.detect_batch(images) == [nudenet_detector.detect(image) for image in images]
