"""Drafting through any OpenAI-compatible chat-completions server (vLLM, Ollama, transformers serve).

Plain httpx, no SDK. Requests go out concurrently (bounded by `max_concurrency`) so the server can
batch them; transient failures (connection errors, 408, 429, 5xx) are retried with exponential
backoff, anything else 4xx is not. Reasoning effort and the conversation date go both as the
standard `reasoning_effort` field and as `chat_template_kwargs`, which vLLM and `transformers
serve` pass to the chat template (so the server renders the same date the draft records).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from .backend import Generation, PromptRequest
from .types import FailureReason

_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_BACKOFF_BASE_S = 0.5
_BACKOFF_MAX_S = 8.0


@dataclass(frozen=True, slots=True)
class Posted:
    """One POST after its retries: the 200 response, or the reason there is none."""

    response: httpx.Response | None
    error: FailureReason | None = None
    detail: str = ""
    transient: bool = False  # the last failure was one a later try may not meet (5xx, timeout)
    attempts: int = 1
    latency_ms: int = 0


def _since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str = "",
        timeout_s: float = 120,
        max_concurrency: int = 8,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Any = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.max_concurrency = max(1, max_concurrency)
        self.max_retries = max(0, max_retries)
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            limits=httpx.Limits(
                max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
            ),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def generate(
        self, requests: Sequence[PromptRequest], *, max_new_tokens: int
    ) -> list[Generation]:
        if not requests:
            return []
        if len(requests) == 1 or self.max_concurrency == 1:
            return [self._one(r, max_new_tokens) for r in requests]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(requests))) as pool:
            return list(pool.map(lambda r: self._one(r, max_new_tokens), requests))

    def _body(self, request: PromptRequest, max_new_tokens: int) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": request.system_text},
                {"role": "user", "content": request.user_text},
            ],
            "reasoning_effort": request.reasoning_effort,
            "chat_template_kwargs": {
                "reasoning_effort": request.reasoning_effort,
                "conversation_date": request.conversation_date.isoformat(),
            },
            "max_tokens": max_new_tokens,
            "temperature": 0,
            "stream": False,
        }

    def _one(self, request: PromptRequest, max_new_tokens: int) -> Generation:
        posted = self.post(self._body(request, max_new_tokens))
        if posted.response is None:
            return Generation(
                error=posted.error,
                error_detail=posted.detail,
                latency_ms=posted.latency_ms,
                attempts=posted.attempts,
                model_id=self.model,
            )
        return self._from_response(posted.response, posted.latency_ms, posted.attempts)

    def post(self, body: dict[str, Any], *, path: str = "/chat/completions") -> Posted:
        """POST `body` to the server, retrying transient failures; the 200 response, or why
        there is none. Shared with the second-opinion adapters (policies/second_opinion/)."""
        url = f"{self.base_url}{path}"
        started = time.perf_counter()
        attempts = 0
        last_detail = ""
        while True:
            attempts += 1
            transient = False
            try:
                response = self._client.post(url, json=body)
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout):
                    transient, last_detail = True, f"connect timeout: {exc}"
                else:
                    return Posted(
                        None,
                        FailureReason.TIMEOUT,
                        f"no answer within {self.timeout_s:g} s",
                        transient=True,
                        attempts=attempts,
                        latency_ms=_since(started),
                    )
            except (
                httpx.TransportError
            ) as exc:  # connection refused/reset: the server may be restarting
                transient, last_detail = True, f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return Posted(response, attempts=attempts, latency_ms=_since(started))
                last_detail = f"HTTP {response.status_code}: {response.text[:300]}"
                transient = response.status_code in _TRANSIENT_STATUS
            if not transient or attempts > self.max_retries:
                return Posted(
                    None,
                    FailureReason.BACKEND_ERROR,
                    last_detail,
                    transient=transient,
                    attempts=attempts,
                    latency_ms=_since(started),
                )
            self._sleep(min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2 ** (attempts - 1)))

    def _from_response(
        self, response: httpx.Response, latency_ms: int, attempts: int
    ) -> Generation:
        try:
            payload = response.json()
            choice = payload["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            return Generation(
                error=FailureReason.BACKEND_ERROR,
                error_detail=f"malformed response ({type(exc).__name__}): {response.text[:300]}",
                latency_ms=latency_ms,
                attempts=attempts,
                model_id=self.model,
            )
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        usage = payload.get("usage") or {}
        served_model = str(payload.get("model") or self.model)
        return Generation(
            text=message.get("content") or "",
            reasoning=reasoning if isinstance(reasoning, str) else None,
            finish_reason=choice.get("finish_reason"),
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            latency_ms=latency_ms,
            attempts=attempts,
            model_id=self.model,
            # A server names the model it actually ran; with vLLM that is the served name/path.
            model_revision=f"server:{served_model}",
        )
