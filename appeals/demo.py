"""The quickstart's demo: the published policies from ../shared/datasets, cases from public
moderation data (their labels kept in the item's metadata for later evaluation), and demo logins.

Everything goes through the same services a real platform's data goes through.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from policies.models import PolicyVersion
from policies.services import import_policy_version
from policies.workbench.datasets import load_demo_golden_sets

from .demo_precedents import decide_demo_cases
from .intake import services as intake
from .intake.bulk import receive_items_bulk
from .intake.schemas import AppealIn, ItemIn
from .models import AuditEvent, Case, Platform
from .review.roles import assign_role, bootstrap_roles

TEEN_SAFETY = {
    "graphic-violent-content": "Graphic Violent Content (Teen Safety)",
    "graphic-sexual-content": "Graphic Sexual Content (Teen Safety)",
    "harmful-body-ideals": "Harmful Body Ideals (Teen Safety)",
    "dangerous-content": "Dangerous Content (Teen Safety)",
    "dangerous-roleplay": "Dangerous Roleplay (Teen Safety)",
    "age-restricted-goods-and-services": "Age-Restricted Goods and Services (Teen Safety)",
}
# Which demo policy reviews a text from the moderation eval set, by its positive labels. Self-harm
# (SH) has no demo policy (Harmful Body Ideals only refers it on), so those texts are left out,
# like hate and harassment.
LABEL_TO_POLICY = [
    (("V2", "V"), "graphic-violent-content"),
    (("S3", "S"), "graphic-sexual-content"),
]
DEMO_USERS = {
    "reviewer": ("reviewer",),
    "senior": ("senior_reviewer",),
    "auditor": ("auditor",),
    "policyadmin": ("policy_admin",),
}


def datasets_dir() -> Path:
    return Path(getattr(settings, "DATASETS_DIR", settings.BASE_DIR.parent / "shared" / "datasets"))


def load_policies(root: Path) -> list[PolicyVersion]:
    versions = []
    pack = root / "teen-safety-policy-pack"
    notice = (pack / "LICENSE").read_text()[:2000] if (pack / "LICENSE").exists() else ""
    notice = (
        "ROOST Teen Safety policy pack (roostorg/model-community), Apache-2.0, "
        "with its USAGE_POLICY.\n\n" + notice
    )
    for slug, name in TEEN_SAFETY.items():
        path = pack / "example_policies" / slug / "policy.md"
        versions.append(
            import_policy_version(
                slug=slug,
                name=name,
                text=path.read_text(),
                source=str(path.relative_to(root)),
                licence_notice=notice,
            )
        )
    spam = root / "spam-policy-example"
    versions.append(
        import_policy_version(
            slug="spam",
            name="Spam (OpenAI example)",
            text=(spam / "policy.txt").read_text(),
            source="spam-policy-example/policy.txt",
            licence_notice="OpenAI gpt-oss-safeguard example policy, Apache-2.0.\n\n"
            + (spam / "LICENSE").read_text()[:2000],
        )
    )
    return versions


def _moderation_items(root: Path, limit: int) -> list[ItemIn]:
    items = []
    unlabelled_policy = list(TEEN_SAFETY)
    with gzip.open(root / "openai-moderation" / "samples-1680.jsonl.gz", "rt") as handle:
        for line_no, line in enumerate(handle, start=1):
            if len(items) >= limit:
                break
            sample = json.loads(line)
            labels = {k: v for k, v in sample.items() if k != "prompt"}
            policy = None
            for keys, slug in LABEL_TO_POLICY:
                if any(labels.get(k) == 1 for k in keys):
                    policy = slug
                    break
            if policy is None:
                if any(v == 1 for v in labels.values()):
                    continue  # self-harm, hate, harassment: no demo policy covers it
                policy = unlabelled_policy[line_no % len(unlabelled_policy)]
            text = sample["prompt"].strip()
            if not text:
                continue
            items.append(
                ItemIn(
                    external_id=f"openai-moderation-{line_no}",
                    policy=policy,
                    content=text[: settings.CONTENT_MAX_CHARS],
                    source="user_report" if line_no % 5 else "automated",
                    author_id=f"user-{line_no % 37}",
                    reporter_id=f"reporter-{line_no % 11}",
                    metadata={"dataset": "openai-moderation", "line": line_no, "labels": labels},
                )
            )
    return items


def _spam_items(root: Path) -> list[ItemIn]:
    items = []
    with open(root / "spam-policy-example" / "golden_dataset.csv", newline="") as handle:
        for row in csv.reader(handle):
            if len(row) < 10 or not row[0].strip().isdigit() or not row[1].strip():
                continue
            items.append(
                ItemIn(
                    external_id=f"spam-golden-{row[0].strip()}",
                    policy="spam",
                    content=row[1].strip(),
                    source="automated",
                    author_id=f"sender-{int(row[0]) % 13}",
                    metadata={"dataset": "spam-policy-example", "label": row[9].strip()},
                )
            )
    return items


# --- a small group of near-duplicate spam (appeals/groups/ finds it once the worker runs) --------


def _near_duplicate_spam(root: Path) -> list[ItemIn]:
    """One referral scam from the spam golden set, sent by four accounts with the small changes
    copies pick up on the way (case, spacing, punctuation, a different amount)."""
    with open(root / "spam-policy-example" / "golden_dataset.csv", newline="") as handle:
        text = next(
            row[1].strip()
            for row in csv.reader(handle)
            if len(row) > 9 and row[9].strip() == "SP3" and "referral" in row[1]
        )
    copies = [
        f"{text} Join here: https://refer.example/join?ref=a1",
        f"{text.upper()} Join here: https://refer.example/join?ref=b2",
        f"{text.replace('$100', '$150')}  Join here!! https://refer.example/join?ref=c3",
        f"{text.replace(' --- ', ', ')} Join here: refer.example/join",
    ]
    return [
        ItemIn(
            external_id=f"spam-copy-{n}",
            policy="spam",
            content=content,
            source="user_report",
            author_id=f"referrer-{n}",
            metadata={
                "dataset": "spam-policy-example",
                "near_duplicate_of": "the SP3 referral scam",
            },
        )
        for n, content in enumerate(copies, start=1)
    ]


@dataclass(frozen=True)
class DemoSummary:
    policies: int
    cases_created: int
    appeals_created: int
    password: str
    users_created: tuple[str, ...] = ()
    users_kept: tuple[str, ...] = ()


def ensure_demo_users(password: str | None) -> tuple[str, list[str], list[str]]:
    """Create the demo logins that don't exist yet, all with `password`.

    An account that already exists is left exactly as it is: no new password, no roles, and an
    existing `admin` is not made a superuser. (Running the demo against a real database must not
    hand out a known password or superuser rights.) Returns the password and the usernames
    created and kept.
    """
    bootstrap_roles()
    password = password or secrets.token_urlsafe(9)
    User = get_user_model()
    wanted = [*DEMO_USERS, "admin"]
    existing = set(User.objects.filter(username__in=wanted).values_list("username", flat=True))
    created = []
    with transaction.atomic():
        for username, roles in DEMO_USERS.items():
            if username in existing:
                continue
            user = User.objects.create_user(username=username, password=password)
            for role in roles:
                assign_role(user, role)
            created.append(username)
        if "admin" not in existing:
            User.objects.create_superuser(username="admin", email="", password=password)
            created.append("admin")
    kept = [name for name in wanted if name in existing]
    return password, created, kept


def load_demo(
    *, root: Path | None = None, cases: int = 200, password: str | None = None
) -> DemoSummary:
    root = root or datasets_dir()
    versions = load_policies(root)
    load_demo_golden_sets(root)  # the labelled sets shipped with those policies (workbench)
    platform, _ = Platform.objects.get_or_create(slug="demo", defaults={"name": "Demo platform"})
    payloads = _moderation_items(root, cases) + _spam_items(root) + _near_duplicate_spam(root)
    created = 0
    for start in range(0, len(payloads), 500):
        outcomes = receive_items_bulk(
            platform=platform,
            payloads=payloads[start : start + 500],
            invalid={},
            source=AuditEvent.Source.COMMAND,
        )
        created += sum(1 for o in outcomes if o.status == 201)
    appeals = _demo_appeals(platform)
    # Image and video cases, drawn here and stored as a platform's upload would be.
    from .demo_media import load_demo_media

    created += load_demo_media(platform)
    password, users_created, users_kept = ensure_demo_users(password)
    # Precedents: a third of the flags decided from their labels (appeals/demo_precedents.py).
    decide_demo_cases(platform)
    return DemoSummary(
        len(versions), created, appeals, password, tuple(users_created), tuple(users_kept)
    )


def _demo_appeals(platform: Platform) -> int:
    """A few users appeal removals the platform made before the item reached this console."""
    created = 0
    statements = [
        "This is a scene from the horror novel I'm writing, not something real.",
        "I was asking how to stay safe, I wasn't encouraging anyone.",
        "My post was removed but it's a quote from the news.",
    ]
    items = list(
        Case.objects.filter(platform=platform, kind=Case.Kind.FLAG)
        .select_related("item")
        .order_by("id")[: len(statements)]
    )
    # A database loaded by an earlier version of the demo holds these appeals with other bodies.
    loaded = set(
        Case.objects.filter(platform=platform, kind=Case.Kind.APPEAL).values_list(
            "external_id", flat=True
        )
    )
    with transaction.atomic():
        for case, statement in zip(items, statements, strict=False):
            if f"appeal-{case.external_id}" in loaded:
                continue
            # The platform removed it the day before the flag reached this console.
            decided_at = case.created_at - dt.timedelta(days=1)
            payload = AppealIn(
                external_id=f"appeal-{case.external_id}",
                item_external_id=case.external_id,
                statement=statement,
                appellant_id=case.item.author_id or "appellant",
                original_decision={"outcome": "remove", "rule_ids": [], "decided_at": decided_at},
            )
            result = intake.receive_appeal(
                platform=platform, payload=payload, source=AuditEvent.Source.COMMAND
            )
            created += result.created
    return created
