"""The OpenAI-compatible server backend: a real `transformers serve` on loopback, and the HTTP edges
(retries, timeouts, concurrency) against httpx's mock transport."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from policies.safeguard import DraftStatus, EngineConfig, FailureReason
from policies.safeguard.engine import Engine
from policies.safeguard.openai_backend import OpenAIBackend
from tests.safeguard_fixtures import FIXTURE_CASES, FIXTURE_DATE, fixture_policy

ANSWER = '{"violation": 1, "policy_category": "FX1.a", "rule_ids": ["FX1.a"], "confidence": "high", "rationale": "r"}'


def _ok(content: str = ANSWER, **message: object) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "model": "served-model",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": content, **message},
                }
            ],
            "usage": {"prompt_tokens": 321, "completion_tokens": 12},
        },
    )


def _engine(handler, **config: object) -> Engine:  # noqa: ANN001
    settings: dict[str, object] = {
        "base_url": "http://server.test/v1",
        "model": "gpt-oss-safeguard",
        "max_retries": 3,
    }
    cfg = EngineConfig(**{**settings, **config})  # type: ignore[arg-type]
    backend = OpenAIBackend(
        base_url=cfg.base_url,
        model=cfg.model,
        timeout_s=cfg.timeout_s,
        max_concurrency=cfg.max_concurrency,
        max_retries=cfg.max_retries,
        transport=httpx.MockTransport(handler),
        sleep=lambda _s: None,
    )
    return Engine(cfg, backend=backend)


def _draft(engine: Engine, n: int = 1) -> list:  # noqa: ANN001
    return engine.draft(
        fixture_policy(), [f.case for f in FIXTURE_CASES][:n], conversation_date=FIXTURE_DATE
    )


def test_request_carries_policy_as_system_case_as_user_effort_date_and_greedy_settings() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        assert request.url.path == "/v1/chat/completions"
        return _ok(reasoning="Vendor reasoning.")

    draft = _draft(_engine(handler, max_new_tokens=512))[0]

    body = seen[0]
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"].startswith("# Fixture Spam Policy")
    assert "Hi Sam, here is the quarterly report" in body["messages"][1]["content"]
    assert body["reasoning_effort"] == "medium"
    assert body["chat_template_kwargs"] == {
        "reasoning_effort": "medium",
        "conversation_date": "2026-01-15",
    }
    assert (
        body["temperature"] == 0
        and body["max_tokens"] == 512
        and body["model"] == "gpt-oss-safeguard"
    )
    assert draft.status is DraftStatus.READY and draft.reasoning == "Vendor reasoning."
    assert draft.provenance.model_revision == "server:served-model"
    assert (draft.provenance.tokens_in, draft.provenance.tokens_out, draft.provenance.attempts) == (
        321,
        12,
        1,
    )


def test_transient_errors_are_retried_and_attempts_recorded() -> None:
    statuses = iter([503, 429])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(statuses, 200)
        return _ok() if status == 200 else httpx.Response(status, text="busy")

    draft = _draft(_engine(handler))[0]

    assert draft.status is DraftStatus.READY
    assert draft.provenance.attempts == 3


def test_connection_errors_are_retried_until_the_limit_then_fail_as_backend_error() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=request)

    draft = _draft(_engine(handler, max_retries=2))[0]

    assert calls == 3
    assert draft.failure_reason is FailureReason.BACKEND_ERROR
    assert draft.provenance.attempts == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(status: int) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, json={"error": "bad request"})

    draft = _draft(_engine(handler))[0]

    assert calls == 1
    assert draft.failure_reason is FailureReason.BACKEND_ERROR
    assert f"HTTP {status}" in draft.failure_detail


def test_a_read_timeout_is_a_timeout_draft() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    draft = _draft(_engine(handler, timeout_s=5))[0]

    assert draft.failure_reason is FailureReason.TIMEOUT
    assert draft.provenance.attempts == 1


def test_malformed_responses_and_empty_answers_are_failed_drafts() -> None:
    responses = iter(
        [
            httpx.Response(200, text="not json"),
            _ok(content=""),
            _ok(content="", reasoning="thinking..."),
        ]
    )

    drafts = [_draft(_engine(lambda _r: next(responses)))[0] for _ in range(3)]

    assert [d.failure_reason for d in drafts] == [
        FailureReason.BACKEND_ERROR,
        FailureReason.EMPTY,
        FailureReason.NO_FINAL_ANSWER,
    ]


def test_requests_run_concurrently_up_to_max_concurrency_and_keep_their_order() -> None:
    lock = threading.Lock()
    active = peak = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        content = json.loads(request.content)["messages"][1]["content"]
        violation = 1 if "FOLLOWERS" in content or "password" in content else 0
        return _ok(content=json.dumps({"violation": violation}))

    drafts = _engine(handler, max_concurrency=3).draft(
        fixture_policy(), [f.case for f in FIXTURE_CASES] * 3, conversation_date=FIXTURE_DATE
    )

    assert peak == 3
    assert [d.violation for d in drafts] == [f.violation for f in FIXTURE_CASES] * 3


# -- a real OpenAI-compatible server: `transformers serve` with the tiny checkpoint ---------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_tiny_model(tiny_checkpoint: Path) -> Iterator[str]:
    port = _free_port()
    cli = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(
        [
            str(cli),
            "serve",
            str(tiny_checkpoint),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--attn-implementation",
            "eager",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                pytest.fail(f"transformers serve exited early:\n{output[-3000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("transformers serve did not become healthy within 120 s")
            time.sleep(0.5)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_fixture_cases_drafted_through_a_real_transformers_serve(
    served_tiny_model: str, tiny_checkpoint: Path
) -> None:
    config = EngineConfig(
        base_url=served_tiny_model,
        model=str(tiny_checkpoint),
        max_new_tokens=120,
        max_concurrency=2,
    )
    assert config.resolved_backend == "openai"

    drafts = Engine(config).draft(
        fixture_policy(), [f.case for f in FIXTURE_CASES], conversation_date=FIXTURE_DATE
    )

    for draft, fixture in zip(drafts, FIXTURE_CASES, strict=True):
        assert draft.status is DraftStatus.READY, (
            draft.failure_reason,
            draft.failure_detail,
            draft.raw_output,
        )
        assert draft.violation is fixture.violation
        assert draft.rule_ids == fixture.rule_ids
        assert (
            draft.reasoning == fixture.analysis
        )  # from the flattened `analysis…assistantfinal…` text
        assert draft.provenance.backend == "openai"
        assert draft.provenance.model_revision.startswith("server:")
        assert draft.provenance.tokens_in > 300
