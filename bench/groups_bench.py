"""Near-duplicate grouping on this machine (issue 14, item 5): fingerprints per second (no
database), and the grouping task's cases per second against a database that already holds
many fingerprints, with how many planted copies were found.

    .venv/bin/python bench/groups_bench.py [--cases 5000] [--copies 200]

Uses DATABASE_URL (migrated first) or, without it, a throwaway SQLite file. Texts are real ones
from ../shared/datasets/openai-moderation, each used once, plus `--copies` near-duplicates made
with small edits. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _texts(limit: int) -> list[str]:
    path = ROOT.parent / "shared" / "datasets" / "openai-moderation" / "samples-1680.jsonl.gz"
    with gzip.open(path, "rt") as lines:
        texts = [json.loads(line)["prompt"].strip() for line in lines]
    texts = sorted({t for t in texts if len(t) >= 60})
    out, n = list(texts[:limit]), 1
    while len(out) < limit:  # more than the dataset holds: two texts joined, distinct ones
        for k, text in enumerate(texts):
            out.append(f"{text} {texts[(k * 7 + n) % len(texts)]}")
            if len(out) == limit:
                break
        n += 1
    return out


def _copy(text: str) -> str:
    i = len(text) // 2
    return text.upper()[:1] + text[1:i] + text[i + 1 : i + 2] + text[i] + text[i + 2 :] + "!!"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--copies", type=int, default=200)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp()
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/bench.sqlite3")
    os.environ["CELERY_BROKER_URL"] = "memory://"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewer.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from appeals.groups import fingerprints
    from appeals.groups import services as grouping
    from appeals.intake.bulk import receive_items_bulk
    from appeals.intake.schemas import ItemIn
    from appeals.models import AuditEvent, Case, GroupMember, Platform
    from policies.services import import_policy_version
    from tests.builders import POLICY_TEXT

    call_command("migrate", verbosity=0)
    texts = _texts(args.cases)

    started = time.perf_counter()
    for text in texts[:2000]:
        fingerprints.text_print(
            text, threshold=settings.GROUP_TEXT_SIMILARITY, min_chars=settings.GROUP_TEXT_MIN_CHARS
        )
    prints_per_s = min(2000, len(texts)) / (time.perf_counter() - started)

    run = str(int(time.time()))
    import_policy_version(slug=f"bench-{run}", name="Bench", text=POLICY_TEXT)
    platform_, _ = Platform.objects.get_or_create(slug=f"bench-{run}", defaults={"name": "B"})
    copies = [_copy(t) for t in texts[: args.copies]]

    def intake(contents: list[str], prefix: str) -> list[int]:
        """Receive the texts through bulk intake; their case ids, in the texts' order."""
        for start in range(0, len(contents), 1000):
            payloads = [
                ItemIn(external_id=f"{prefix}-{start + i}", policy=f"bench-{run}", content=c)
                for i, c in enumerate(contents[start : start + 1000])
            ]
            receive_items_bulk(
                platform=platform_, payloads=payloads, invalid={}, source=AuditEvent.Source.COMMAND
            )
        by_position = dict(
            Case.objects.filter(
                platform=platform_, external_id__startswith=f"{prefix}-"
            ).values_list("external_id", "id")
        )
        return [by_position[f"{prefix}-{i}"] for i in range(len(contents))]

    originals = intake(texts, "o")
    started = time.perf_counter()
    for start in range(0, len(originals), grouping.BATCH_SIZE):
        grouping.group_near_duplicates(originals[start : start + grouping.BATCH_SIZE])
    first_pass = time.perf_counter() - started

    copy_ids = intake(copies, "c")
    started = time.perf_counter()
    for start in range(0, len(copy_ids), grouping.BATCH_SIZE):
        grouping.group_near_duplicates(copy_ids[start : start + grouping.BATCH_SIZE])
    second_pass = time.perf_counter() - started
    groups_of = dict(
        GroupMember.objects.filter(case__platform=platform_).values_list("case_id", "group_id")
    )
    found = sum(
        1
        for original, copy in zip(originals, copy_ids, strict=False)
        if copy in groups_of and groups_of.get(original) == groups_of[copy]
    )

    print(
        json.dumps(
            {
                "database": connection.vendor,
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": round(os.getloadavg()[0], 2),
                "text_fingerprints_per_s": round(prints_per_s, 1),
                "cases": len(originals),
                "grouping_cases_per_s_first_pass": round(len(originals) / first_pass, 1),
                "copies": len(copy_ids),
                "grouping_copies_per_s_against_all": round(len(copy_ids) / second_pass, 1),
                "planted_copies_grouped_with_their_original": found,
                # Texts that are near-duplicates in the data itself (the dataset has repeats,
                # and a long text joined to a very short one is still mostly the long one).
                "other_cases_grouped": len(groups_of) - 2 * found,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
