"""The fast tier's image path as the worker runs it: images stored through the upload path,
then `appeals.triage.services.triage_items` on them (our stored copy read through the storage
API, NudeNet's model, one short transaction per item on SQLite). Runs on a throwaway embedded
database and media folder in a temporary directory; no broker, no server.

    .venv/bin/python bench/triage_worker_bench.py [--images 40] [--rounds 2]

Prints one JSON object. Compare with bench/triage_bench.py (the classifier alone).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    var = tempfile.mkdtemp(prefix="triage-worker-bench-")
    for name in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "CELERY_BROKER_URL"):
        os.environ.pop(name, None)
    os.environ.update(APPEALS_VAR_DIR=var, DJANGO_SETTINGS_MODULE="reviewer.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from appeals.intake import uploads
    from appeals.intake.schemas import ItemIn
    from appeals.models import Platform
    from appeals.triage import classifiers
    from appeals.triage import services as triage
    from bench.triage_bench import _images
    from policies.services import import_policy_version

    import_policy_version(slug="spam", name="Spam", text="# Spam\n\n## SP1 Spam\nNo spam.\n")
    platform = Platform.objects.create(slug="bench", name="Bench")
    rounds = []
    for round_no in range(args.rounds):
        ids = []
        for i, data in enumerate(_images(args.images, seed=100 + round_no)):
            payload = ItemIn(
                external_id=f"r{round_no}-{i}",
                policy="spam",
                content="(photo)",
                content_type="image",
            )
            upload = uploads.with_media(payload, data, field="media")
            ids.append(
                uploads.receive_item_with_media(platform=platform, upload=upload).case.item_id
            )
        classifiers.detect_nudity(_images(1)[0])  # a worker has its model loaded
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        result = triage.triage_items(ids)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        assert len(result.signals) == len(ids) and not result.waiting
        rounds.append(
            {
                "images_per_s": round(len(ids) / wall, 1),
                "images_per_cpu_s": round(len(ids) / cpu, 1),
                "load_average_at_start": round(load, 2),
            }
        )
    print(json.dumps({"images": args.images, "image_size": "640x480 JPEG", "rounds": rounds}))


if __name__ == "__main__":
    main()
