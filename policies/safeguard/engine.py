"""The engine: one policy version and some cases in, one `Draft` per case out.

`Engine.draft` renders each case's prompt, hands the batch to a backend (in-process transformers
or an OpenAI-compatible server), parses what comes back and wraps it with provenance. It never
raises for model or server problems: those become FAILED drafts with a `FailureReason`, and with
no GPU and no server configured every draft is NOT_CONFIGURED without anything being loaded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Sequence

from .backend import Backend, Generation, PromptRequest
from .config import EngineConfig, unavailable_reason
from .injection import detect_injection
from .parsing import parse_output
from .prompt import build_messages, effort_value, render_prefix, render_suffix
from .types import CaseSpec, Draft, DraftStatus, FailureReason, PolicySpec, Provenance

NEUTRALISED_SIGNAL = "contained control-token text (neutralised before the model saw it)"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def policy_effort(policy: PolicySpec, config: EngineConfig) -> str:
    """The policy version's effort when it sets one, else the configured default."""
    effort = policy.reasoning_effort or config.reasoning_effort
    return effort_value(effort)


class Engine:
    def __init__(self, config: EngineConfig, backend: Backend | None = None) -> None:
        self.config = config
        self._backend = backend
        self._lock = threading.Lock()

    @property
    def backend_name(self) -> str:
        return self._backend.name if self._backend is not None else self.config.resolved_backend

    def backend(self) -> Backend:
        with self._lock:
            if self._backend is None:
                self._backend = _make_backend(self.config)
            return self._backend

    def prepare(
        self, policy: PolicySpec, cases: Sequence[CaseSpec], *, conversation_date: dt.date
    ) -> list[tuple[PromptRequest, tuple[str, ...]]]:
        """Each case's rendered prompt and its injection signals (no model involved)."""
        effort = policy_effort(policy, self.config)
        prepared: list[tuple[PromptRequest, tuple[str, ...]]] = []
        prefix_by_system: dict[str, str] = {}
        for case in cases:
            messages = build_messages(policy, case)
            prefix = prefix_by_system.get(messages.system)
            if prefix is None:
                prefix = render_prefix(
                    messages.system, conversation_date=conversation_date, reasoning_effort=effort
                )
                prefix_by_system[messages.system] = prefix
            request = PromptRequest(
                system_text=messages.system,
                user_text=messages.user,
                prefix_text=prefix,
                prompt_text=prefix + render_suffix(messages.user),
                reasoning_effort=effort,
                conversation_date=conversation_date,
            )
            signals = detect_injection(case.content)
            if case.appeal_statement:
                signals += tuple(
                    f"appeal statement {s}" for s in detect_injection(case.appeal_statement)
                )
            if messages.neutralised:
                signals += (f"{NEUTRALISED_SIGNAL}: {', '.join(messages.neutralised)}",)
            prepared.append((request, signals))
        return prepared

    def draft(
        self, policy: PolicySpec, cases: Sequence[CaseSpec], *, conversation_date: dt.date
    ) -> list[Draft]:
        """One Draft per case, in order. Never raises for model or server problems."""
        if not cases:
            return []
        prepared = self.prepare(policy, cases, conversation_date=conversation_date)
        reason = unavailable_reason(self.config) if self._backend is None else None
        if reason is not None:
            generations = [
                Generation(
                    error=FailureReason.NOT_CONFIGURED,
                    error_detail=reason,
                    model_id=self.config.model,
                )
                for _ in cases
            ]
        else:
            started = time.perf_counter()
            try:
                generations = self.backend().generate(
                    [p for p, _ in prepared], max_new_tokens=self.config.max_new_tokens
                )
            except (
                Exception
            ) as exc:  # backends shouldn't raise; if one does, the drafts still come back
                elapsed = int((time.perf_counter() - started) * 1000)
                generations = [
                    Generation(
                        error=FailureReason.BACKEND_ERROR,
                        error_detail=f"{type(exc).__name__}: {exc}"[:1000],
                        model_id=self.config.model,
                        latency_ms=elapsed,
                    )
                    for _ in cases
                ]
        return [
            self._to_draft(policy, case, request, signals, generation)
            for case, (request, signals), generation in zip(
                cases, prepared, generations, strict=True
            )
        ]

    def _to_draft(
        self,
        policy: PolicySpec,
        case: CaseSpec,
        request: PromptRequest,
        signals: tuple[str, ...],
        generation: Generation,
    ) -> Draft:
        provenance = Provenance(
            backend=self.backend_name,
            model_id=generation.model_id or self.config.model,
            model_revision=generation.model_revision,
            policy_version_id=policy.version_id,
            policy_sha256=policy.sha256,
            prompt_sha256=sha256_text(request.prompt_text),
            reasoning_effort=request.reasoning_effort,
            conversation_date=request.conversation_date,
            tokens_in=generation.tokens_in,
            tokens_out=generation.tokens_out,
            latency_ms=generation.latency_ms,
            attempts=generation.attempts,
        )
        if generation.error is not None:
            return Draft(
                case_key=case.key,
                status=DraftStatus.FAILED,
                provenance=provenance,
                failure_reason=generation.error,
                failure_detail=generation.error_detail,
                injection_signals=signals,
            )
        parsed = parse_output(
            generation.text,
            policy=policy,
            reasoning=generation.reasoning,
            finish_reason=generation.finish_reason,
        )
        raw = generation.text
        if generation.reasoning:
            raw = f"[reasoning]\n{generation.reasoning}\n[content]\n{generation.text}"
        return Draft(
            case_key=case.key,
            status=parsed.status,
            provenance=provenance,
            failure_reason=parsed.failure_reason,
            failure_detail=parsed.failure_detail,
            violation=parsed.violation,
            policy_category=parsed.policy_category,
            rule_ids=parsed.rule_ids,
            unknown_rule_ids=parsed.unknown_rule_ids,
            confidence=parsed.confidence,
            rationale=parsed.rationale,
            reasoning=parsed.reasoning,
            raw_output=raw,
            injection_signals=signals,
        )


def _make_backend(config: EngineConfig) -> Backend:
    if config.resolved_backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(
            base_url=config.base_url,
            model=config.model,
            api_key=config.api_key,
            timeout_s=config.timeout_s,
            max_concurrency=config.max_concurrency,
            max_retries=config.max_retries,
        )
    from .transformers_backend import TransformersBackend

    return TransformersBackend(
        model=config.model, device=config.device, batch_size=config.batch_size
    )


_ENGINES: dict[EngineConfig, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(config: EngineConfig) -> Engine:
    """The process's engine for `config` (created on first call; loads nothing until a draft)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(config)
        if engine is None:
            engine = Engine(config)
            _ENGINES[config] = engine
        return engine
