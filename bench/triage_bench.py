"""Fast-tier throughput on this machine's CPU (issue 14): texts/s for the offensive-language
score and the language (one text at a time, as the worker task does, and batched), and
images/s for NudeNet's detections on encoded JPEGs (as read from our storage).

    .venv/bin/python bench/triage_bench.py [--texts 2000] [--images 40] [--images-only]

Goals: >= 200 texts/s and >= 10 images/s. Prints one JSON object. No database, no Django:
the classifiers are framework-free (appeals/triage/classifiers.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from appeals.triage import classifiers  # noqa: E402

WORDS = (
    "the a you your this that post comment photo is are was really very so stupid idiot "
    "lovely great terrible hate love people never always again today tomorrow buy cheap "
    "free click link here now report account spam scam friend family weather park game"
).split()


def _texts(n: int, seed: int = 14) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 40))) for _ in range(n)]


def _images(n: int, seed: int = 14) -> list[bytes]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        # Smooth-ish content (gradients and blocks), like photos, rather than pure noise.
        base = rng.integers(0, 255, size=(12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((640, 480), Image.BILINEAR)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds else float("inf")


def bench_texts(n: int, batch: int = 200) -> dict:
    texts = _texts(n)
    classifiers.offensive_scores(texts[:10])  # load the models
    classifiers.languages_of(texts[:10])
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(0, n, batch):  # as the worker task does: both models over a batch
        classifiers.offensive_scores(texts[i : i + batch])
        classifiers.languages_of(texts[i : i + batch])
    batched, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    single = texts[: max(1, n // 10)]
    start = time.perf_counter()
    for text in single:  # one text per task: an API call for one item on a quiet system
        classifiers.offensive_scores([text])
        classifiers.language_of(text)
    one_at_a_time = time.perf_counter() - start
    return {
        "texts": n,
        "batch": batch,
        "texts_per_s_batched_offensive_and_language": _rate(n, batched),
        "texts_per_cpu_s_batched": _rate(n, cpu),
        "texts_per_s_one_at_a_time_offensive_and_language": _rate(len(single), one_at_a_time),
    }


def _run_images(detect, images, batch: int) -> tuple[float, float]:
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(0, len(images), batch):
        detect(images[i : i + batch])
    return time.perf_counter() - start, time.process_time() - cpu_start


def bench_images(n: int, rounds: int = 3) -> dict:
    """NudeNet's own detector (the old path) against our runner of the same model
    (appeals/triage/nudity.py) with several thread counts, one image at a time as the worker
    scores them, and in batches of 4. Variants alternate, `rounds` times, and the median of
    each is reported, so all of them see the same machine load."""
    import statistics

    import nudenet

    from appeals.triage.nudity import NudityRunner

    images = _images(n)
    upstream = nudenet.NudeDetector()
    variants = {
        "nudenet_detector_one_at_a_time": (lambda b: [upstream.detect(i) for i in b], 1),
    }
    for threads in (0, 1, 2):
        runner = NudityRunner(threads=threads, batch_size=4)
        variants[f"runner_threads_{threads}_one_at_a_time"] = (
            lambda b, r=runner: [r.detect(i) for i in b],
            1,
        )
        if threads:
            variants[f"runner_threads_{threads}_batches_of_4"] = (runner.detect_batch, 4)
    for detect, batch in variants.values():
        detect(images[:batch])  # warm up
    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (detect, batch) in variants.items():
            wall, cpu = _run_images(detect, images, batch)
            walls[name].append(wall)
            cpus[name].append(cpu)
    rates = {name: _rate(n, statistics.median(w)) for name, w in walls.items()}
    baseline = rates["nudenet_detector_one_at_a_time"]
    return {
        "images": n,
        "rounds": rounds,
        "image_size": "640x480 JPEG (generated: smooth random colour fields)",
        "images_per_s": rates,
        "images_per_cpu_s": {name: _rate(n, statistics.median(c)) for name, c in cpus.items()},
        "speedup_vs_nudenet_detector": {
            name: round(rate / baseline, 2) for name, rate in rates.items()
        },
        "production_default": "runner_threads_1_one_at_a_time (TRIAGE_ONNX_THREADS=1)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--images-only", action="store_true")
    args = parser.parse_args()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "models": {
            "offensive": " ".join(vars(classifiers.offensive_model()).values()),
            "language": " ".join(vars(classifiers.language_model()).values()),
            "nudity": " ".join(vars(classifiers.nudity_model()).values()),
        },
        **({} if args.images_only else bench_texts(args.texts)),
        **bench_images(args.images),
        "load_average_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
