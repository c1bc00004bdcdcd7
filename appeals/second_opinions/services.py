"""Asking a case's configured second-opinion models and storing what they said.

Intake calls `queue_second_opinions` inside its transaction; the models are asked after commit by
the task `appeals.tasks.second_opinions` on the CPU queue (they are HTTP calls to model servers).
Storage is exactly once per case and setting: a pair already answered is skipped, and the insert
runs in a savepoint against the unique (case, setting), so two deliveries of one message, or
two workers racing on it, store one row. A transient failure (timeout, server unreachable) is not
stored: the task tries the pair again later, and stores the failure only on its last try.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from appeals.models import Case, SecondOpinion
from policies.models import PolicyRule, SecondOpinionSetting
from policies.second_opinion import FailureReason, Opinion, ask

log = logging.getLogger(__name__)

PAIRS_PER_TASK = 50
MAX_PARALLEL = 8  # requests in flight per task
# A server may answer at any length whatever max_tokens says: what is kept of it.
MAX_RAW_CHARS = 20_000
MAX_DETAIL_CHARS = 2_000
CONTEXT_KEYS = (("caption", "Caption"), ("alt_text", "Alt text"), ("transcript", "Transcript"))

Pair = tuple[int, int]  # (case id, setting id)


# --- at intake ---------------------------------------------------------------------------------


def queue_second_opinions(cases: Sequence[Case]) -> None:
    """After commit, ask every enabled second-opinion model of each case's policy (one query)."""
    policy_of = {case.id: case.policy_version.policy_id for case in cases}
    if not policy_of:
        return
    by_policy: dict[int, list[int]] = {}
    for setting_id, policy_id in (
        SecondOpinionSetting.objects.enabled()
        .filter(policy_id__in=set(policy_of.values()))
        .values_list("id", "policy_id")
    ):
        by_policy.setdefault(policy_id, []).append(setting_id)
    pairs = [
        (case_id, setting_id)
        for case_id, policy_id in policy_of.items()
        for setting_id in by_policy.get(policy_id, ())
    ]
    if pairs:
        transaction.on_commit(lambda: enqueue_second_opinions(pairs))


def enqueue_second_opinions(pairs: list[Pair]) -> None:
    """Send the tasks. A broker that is down leaves the case without second opinions (the page
    shows none); the draft and the decision do not depend on them."""
    from .tasks import second_opinions

    try:
        for start in range(0, len(pairs), PAIRS_PER_TASK):
            second_opinions.delay([list(p) for p in pairs[start : start + PAIRS_PER_TASK]])
    except Exception:
        log.exception("could not enqueue second opinions for %s", pairs)


# --- in the worker -----------------------------------------------------------------------------


@dataclass
class Outcome:
    stored: list[SecondOpinion]
    retry: list[Pair]  # transient failures, to try again


def content_for(case: Case) -> str:
    """What a text model reads of the case's item: the content, and any caption, alt text or
    transcript the platform sent for an image or a video."""
    item = case.item
    parts = [item.content.strip()] if item.content and item.content.strip() else []
    metadata = item.metadata if isinstance(item.metadata, dict) else {}
    for key, label in CONTEXT_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(f"{label}: {value.strip()}")
    return "\n\n".join(parts)


def ask_second_opinions(pairs: Iterable[Sequence[int]], *, last_try: bool) -> Outcome:
    """Ask each (case, setting) pair not answered yet; store the answers and final failures."""
    pairs = [(int(case_id), int(setting_id)) for case_id, setting_id in pairs]
    done = set(
        SecondOpinion.objects.filter(
            case_id__in={c for c, _ in pairs}, setting_id__in={s for _, s in pairs}
        ).values_list("case_id", "setting_id")
    )
    todo = [pair for pair in pairs if pair not in done]
    cases = Case.objects.select_related("item", "policy_version").in_bulk({c for c, _ in todo})
    settings = SecondOpinionSetting.objects.in_bulk({s for _, s in todo})
    jobs = [
        (cases[c], settings[s])
        for c, s in todo
        # a setting removed or switched off since intake is not asked
        if c in cases and s in settings and settings[s].enabled
    ]
    # The models are asked in parallel (HTTP only: `_ask` reads nothing from the database), the
    # answers stored one by one here.
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(jobs)))) as pool:
        opinions = list(pool.map(lambda job: _ask(*job), jobs))
    stored: list[SecondOpinion] = []
    retry: list[Pair] = []
    rules_of: dict[int, set[str]] = {}
    for (case, setting), opinion in zip(jobs, opinions, strict=True):
        if opinion.failed and opinion.failure_reason.transient and not last_try:
            retry.append((case.id, setting.id))
            continue
        if case.policy_version_id not in rules_of:
            rules_of[case.policy_version_id] = set(
                PolicyRule.objects.filter(version_id=case.policy_version_id).values_list(
                    "rule_id", flat=True
                )
            )
        row = _store(case, setting, opinion, known_rules=rules_of[case.policy_version_id])
        if row is not None:
            stored.append(row)
    return Outcome(stored=stored, retry=retry)


def _ask(case: Case, setting: SecondOpinionSetting) -> Opinion:
    settings, problem = setting.opinion_settings(policy_text=case.policy_version.text)
    if problem:
        return Opinion(
            adapter=setting.adapter,
            model=setting.model,
            failure_reason=FailureReason.NOT_CONFIGURED,
            failure_detail=problem,
        )
    content = content_for(case)
    if not content:
        return Opinion(
            adapter=setting.adapter,
            model=setting.model,
            failure_reason=FailureReason.NOT_CONFIGURED,
            failure_detail="The item has no text for a text model to read.",
        )
    return ask(settings, content)


def _store(
    case: Case, setting: SecondOpinionSetting, opinion: Opinion, *, known_rules: set[str]
) -> SecondOpinion | None:
    """Insert the row unless the pair already has one; the row, or None when another delivery
    stored it first."""
    row = SecondOpinion(
        case=case,
        setting=setting,
        adapter=opinion.adapter,
        model_name=opinion.model,
        verdict=opinion.verdict.value if opinion.verdict else "",
        categories=list(opinion.categories),
        # A mapping is checked against the version in force when it is saved; a case under an
        # older version keeps only the rules its version defines.
        rule_ids=[r for r in opinion.rule_ids if r in known_rules],
        raw_answer=opinion.raw_answer[:MAX_RAW_CHARS],
        failure_reason=opinion.failure_reason.value if opinion.failure_reason else "",
        failure_detail=opinion.failure_detail[:MAX_DETAIL_CHARS],
        latency_ms=opinion.latency_ms,
        attempts=min(opinion.attempts, 32767),
    )
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        if SecondOpinion.objects.filter(case=case, setting=setting).exists():
            return None  # another delivery of the same message stored it first
        raise
    return row
