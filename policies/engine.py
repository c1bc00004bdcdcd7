"""The bridge from Django settings and policy rows to the framework-free safeguard engine."""

from __future__ import annotations

from .models import PolicyVersion
from .safeguard.types import PolicySpec, ReasoningEffort, Rule


def engine_config():
    """The engine's settings: `EngineConfig.from_env()` is their one reader (README's names).
    The settings module reads them once at start too, so a bad value stops the process there."""
    from .safeguard import EngineConfig

    return EngineConfig.from_env()


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
        # None (the policy sets none): the engine's SAFEGUARD_REASONING_EFFORT applies.
        reasoning_effort=(
            ReasoningEffort(version.policy.reasoning_effort)
            if version.policy.reasoning_effort
            else None
        ),
        name=version.policy.name,
    )
