"""Asking one second-opinion model about one piece of content.

The HTTP side is the main engine's (`OpenAIBackend.post`: one client, the same retries with
backoff for connection errors, 408, 429 and 5xx, the same timeouts); what differs per model is
the prompt and the parser, which each adapter owns. `ask` never raises for anything the server
or the model does: it returns an `Opinion` with a verdict or a named failure reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from policies.safeguard.openai_backend import OpenAIBackend, Posted
from policies.safeguard.types import FailureReason as EngineFailure

from .adapters import ADAPTERS
from .common import clip
from .types import AnswerError, ChatRequest, FailureReason, Opinion, OpinionSettings


def settings_problem(settings: OpinionSettings) -> str:
    """'' when `settings` can be tried; otherwise one sentence naming what to set."""
    if settings.adapter not in ADAPTERS:
        return f"{settings.adapter!r} is not an adapter: one of {', '.join(ADAPTERS)}."
    if not settings.base_url.startswith(("http://", "https://")):
        return "The base URL must be an http:// or https:// URL ending in /v1."
    if not settings.model:
        return "No model name is set: the name the server serves the model under."
    if settings.adapter == "cope" and not settings.policy_text.strip():
        return "CoPE reads a policy: none was given."
    return ""


def _failure(posted: Posted) -> tuple[FailureReason, str]:
    if posted.error is EngineFailure.TIMEOUT:
        return FailureReason.TIMEOUT, posted.detail
    if posted.transient:
        return FailureReason.UNREACHABLE, posted.detail
    return FailureReason.HTTP_ERROR, posted.detail


def _content_of(posted: Posted) -> str:
    """The answer's text; AnswerError(MALFORMED_RESPONSE) when the body is no chat completion."""
    assert posted.response is not None
    try:
        message = posted.response.json()["choices"][0]["message"]
        text = message.get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise AnswerError(
            FailureReason.MALFORMED_RESPONSE,
            f"not a chat completion ({type(exc).__name__}): {clip(posted.response.text)}",
        ) from None
    if text is not None and not isinstance(text, str):
        raise AnswerError(FailureReason.MALFORMED_RESPONSE, "the message content is not text")
    return text or ""


def _body(model: str, request: ChatRequest) -> dict[str, Any]:
    return {
        "model": model,
        "messages": list(request.messages),
        "max_tokens": request.max_tokens,
        "temperature": 0,
        "stream": False,
        **request.extra,
    }


def ask(
    settings: OpinionSettings,
    content: str,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Opinion:
    """What the configured model says about `content`, mapped to the policy's rules."""
    base = {"adapter": settings.adapter, "model": settings.model}
    problem = settings_problem(settings)
    if problem:
        return Opinion(**base, failure_reason=FailureReason.NOT_CONFIGURED, failure_detail=problem)
    adapter = ADAPTERS[settings.adapter]
    requests = adapter.requests(
        content, category_rules=settings.category_rules, policy_text=settings.policy_text
    )
    backend = OpenAIBackend(
        base_url=settings.base_url,
        model=settings.model,
        api_key=settings.api_key,
        timeout_s=settings.timeout_s,
        max_concurrency=1,
        max_retries=settings.max_retries,
        transport=transport,
        sleep=sleep,
    )
    answers: list[tuple[ChatRequest, str]] = []
    latency = attempts = 0
    try:
        for request in requests:
            posted = backend.post(_body(settings.model, request))
            latency += posted.latency_ms
            attempts += posted.attempts
            if posted.response is None:
                reason, detail = _failure(posted)
                return Opinion(
                    **base,
                    failure_reason=reason,
                    failure_detail=detail,
                    raw_answer=_raw(answers),
                    latency_ms=latency,
                    attempts=attempts,
                    requests=len(answers) + 1,
                )
            answers.append((request, _content_of(posted)))
        parsed = adapter.parse(answers)
    except AnswerError as error:
        return Opinion(
            **base,
            failure_reason=error.reason,
            failure_detail=error.detail,
            raw_answer=_raw(answers),
            latency_ms=latency,
            attempts=attempts,
            requests=len(answers),
        )
    finally:
        backend.close()
    rule_ids: list[str] = []
    for category in parsed.categories:
        for rule_id in settings.category_rules.get(category, ()):
            if rule_id not in rule_ids:
                rule_ids.append(rule_id)
    return Opinion(
        **base,
        verdict=parsed.verdict,
        categories=parsed.categories,
        rule_ids=tuple(rule_ids),
        raw_answer=_raw(answers),
        latency_ms=latency,
        attempts=attempts,
        requests=len(answers),
    )


def _raw(answers: list[tuple[ChatRequest, str]]) -> str:
    """The model's answers as it gave them; per harm where there were several requests."""
    if len(answers) == 1 and not answers[0][0].key:
        return answers[0][1]
    return "\n".join(f"[{request.key}] {text}" for request, text in answers)
