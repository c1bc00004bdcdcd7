"""Golden sets from the shared public datasets, with their licences: the Teen Safety policy
pack's six labelled sets and the spam policy example's golden set.

Each dataset labels an example with the policy's tier code (`GV0`, `ARS2`, `SP4`); tier 0 is the
allowed tier, so the expected verdict is "violating" for any other tier, and the tier is the
expected rule id. The sets gate publishing of their policy. Loading twice changes nothing.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from django.db import transaction

from policies.models import Policy

from .golden import ParsedItem, add_items
from .models import GoldenSet

TEEN_SAFETY_SETS = (
    "graphic-violent-content",
    "graphic-sexual-content",
    "harmful-body-ideals",
    "dangerous-content",
    "dangerous-roleplay",
    "age-restricted-goods-and-services",
)
_TIER = re.compile(r"^[A-Z]{1,5}\d{1,3}$")
TEEN_SAFETY_NOTICE = (
    "Synthetic labelled examples from ROOST's Teen Safety policy pack (roostorg/model-community, "
    "resources/policy-packs/openAI/teen-safety), Apache-2.0, with its USAGE_POLICY. The pack says "
    "the prompts were generated under unrealistic conditions and are not representative of "
    "ChatGPT."
)
SPAM_NOTICE = (
    "The golden set of OpenAI's gpt-oss-safeguard spam policy example "
    "(github.com/openai/gpt-oss-safeguard, example_policies/spam), Apache-2.0."
)


def _tier_item(line: int, content: str, label: str, source: str) -> ParsedItem | None:
    label = label.strip()
    content = content.strip()
    if not content or not _TIER.match(label):
        return None
    violating = int(re.sub(r"^[A-Z]+", "", label)) != 0
    return ParsedItem(
        line=line,
        content=content,
        expected_violation=violating,
        expected_rule_ids=(label,) if violating else (),
        source=source,
        note=f"labelled {label}",
    )


def teen_safety_items(path: Path) -> list[ParsedItem]:
    """`datasets/<slug>.csv`: a disclaimer line, a header (example, classification, …), rows."""
    items = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        columns = None
        for row in reader:
            if columns is None:
                lowered = [c.strip().lower() for c in row]
                if lowered and lowered[0].startswith("example"):  # "example" / "example prompt"
                    label_col = next(
                        i for i, c in enumerate(lowered) if c in ("classification", "prompt label")
                    )
                    columns = (0, label_col)
                continue
            if len(row) <= max(columns):
                continue
            item = _tier_item(
                reader.line_num,
                row[columns[0]],
                row[columns[1]],
                f"{path.name} line {reader.line_num}",
            )
            if item is not None:
                items.append(item)
    return items


def spam_items(path: Path) -> list[ParsedItem]:
    """`golden_dataset.csv`: numbered rows, the text in column 2 and the label in column 10."""
    items = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if len(row) < 10 or not row[0].strip().isdigit():
                continue
            item = _tier_item(reader.line_num, row[1], row[9], f"{path.name} row {row[0].strip()}")
            if item is not None:
                items.append(item)
    return items


@transaction.atomic
def _ensure_set(policy: Policy, name: str, items, *, source: str, notice: str) -> GoldenSet | None:
    if GoldenSet.objects.filter(policy=policy, name=name).exists():
        return None
    golden_set = GoldenSet.objects.create(
        policy=policy,
        name=name,
        source=source,
        licence_notice=notice,
        description="labelled examples shipped with the policy",
        gates_publishing=not policy.golden_sets.filter(gates_publishing=True).exists(),
    )
    add_items(golden_set=golden_set, items=items)
    return golden_set


def load_demo_golden_sets(root: Path) -> list[GoldenSet]:
    """The seven labelled sets, for the policies already loaded (missing policies are skipped)."""
    created = []
    pack = root / "teen-safety-policy-pack"
    for slug in TEEN_SAFETY_SETS:
        policy = Policy.objects.filter(slug=slug).first()
        path = pack / "datasets" / f"{slug}.csv"
        if policy is not None and path.exists():
            created.append(
                _ensure_set(
                    policy,
                    "Teen Safety pack examples",
                    teen_safety_items(path),
                    source=f"teen-safety-policy-pack/datasets/{slug}.csv",
                    notice=TEEN_SAFETY_NOTICE,
                )
            )
    spam = Policy.objects.filter(slug="spam").first()
    path = root / "spam-policy-example" / "golden_dataset.csv"
    if spam is not None and path.exists():
        created.append(
            _ensure_set(
                spam,
                "OpenAI spam golden set",
                spam_items(path),
                source="spam-policy-example/golden_dataset.csv",
                notice=SPAM_NOTICE,
            )
        )
    return [s for s in created if s is not None]
