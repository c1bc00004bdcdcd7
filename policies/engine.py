"""The bridge from Django settings and policy rows to the framework-free safeguard engine."""

from __future__ import annotations

from django.conf import settings

from .models import PolicyVersion
from .safeguard.types import PolicySpec, ReasoningEffort, Rule


def engine_config():
    from .safeguard import EngineConfig

    return EngineConfig(
        backend=settings.SAFEGUARD_BACKEND,
        model=settings.SAFEGUARD_MODEL,
        base_url=settings.SAFEGUARD_BASE_URL,
        api_key=settings.SAFEGUARD_API_KEY,
        reasoning_effort=settings.SAFEGUARD_REASONING_EFFORT,
        max_new_tokens=settings.SAFEGUARD_MAX_NEW_TOKENS,
        timeout_s=float(settings.SAFEGUARD_TIMEOUT_SECONDS),
        max_concurrency=settings.SAFEGUARD_MAX_CONCURRENCY,
        max_retries=settings.SAFEGUARD_MAX_RETRIES,
        device=settings.SAFEGUARD_DEVICE,
        batch_size=settings.SAFEGUARD_BATCH_SIZE,
    )


def engine_from_settings():
    """The engine for this process (loaded lazily, on first draft, in the worker only)."""
    from .safeguard import get_engine

    return get_engine(engine_config())


def policy_spec(version: PolicyVersion) -> PolicySpec:
    return PolicySpec(
        version_id=str(version.id),
        text=version.text,
        sha256=version.sha256,
        rules=tuple(Rule(id=r.rule_id, text=r.text) for r in version.rules.all()),
        reasoning_effort=ReasoningEffort(version.policy.reasoning_effort),
        name=version.policy.name,
    )
