"""Configuration, availability and the engine's contract with its callers (no model needed here,
except the policy author's check, which runs the tiny checkpoint)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from policies.safeguard import (
    CaseSpec,
    DraftStatus,
    EngineConfig,
    FailureReason,
    check_policy,
    get_engine,
    policy_spec,
    transformers_backend,
    unavailable_reason,
)
from tests.safeguard_fixtures import FIXTURE_CASES, FIXTURE_DATE, fixture_policy


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_auto_backend_is_the_server_when_a_base_url_is_set() -> None:
    assert EngineConfig().resolved_backend == "transformers"
    assert EngineConfig(base_url="http://gpu:8000/v1").resolved_backend == "openai"
    assert (
        EngineConfig(backend="transformers", base_url="http://gpu:8000/v1").resolved_backend
        == "transformers"
    )


def test_config_reads_the_worker_environment() -> None:
    config = EngineConfig.from_env(
        {
            "SAFEGUARD_BACKEND": "transformers",
            "SAFEGUARD_MODEL": "/models/tiny",
            "SAFEGUARD_DEVICE": "cpu",
            "SAFEGUARD_MAX_NEW_TOKENS": "256",
            "SAFEGUARD_BASE_URL": "http://x:8000/v1/",
            "SAFEGUARD_BATCH_SIZE": "4",
            "SAFEGUARD_REASONING_EFFORT": "HIGH",
            "SAFEGUARD_TIMEOUT_SECONDS": "30",
            "SAFEGUARD_MAX_RETRIES": "0",
        }
    )

    assert (config.backend, config.model, config.device) == ("transformers", "/models/tiny", "cpu")
    assert (config.max_new_tokens, config.batch_size, config.reasoning_effort) == (256, 4, "high")
    assert config.base_url == "http://x:8000/v1"
    assert (config.timeout_s, config.max_retries) == (30.0, 0)
    assert EngineConfig.from_env({}) == EngineConfig()
    assert EngineConfig.from_env({"SAFEGUARD_TIMEOUT_SECONDS": "  "}) == EngineConfig()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SAFEGUARD_TIMEOUT_SECONDS", "soon", "SAFEGUARD_TIMEOUT_SECONDS is 'soon'"),
        ("SAFEGUARD_BATCH_SIZE", "0", "SAFEGUARD_BATCH_SIZE is 0: it must be at least 1"),
        ("SAFEGUARD_MAX_NEW_TOKENS", "8", "at least 16"),
        ("SAFEGUARD_REASONING_EFFORT", "max", "low, medium, high"),
        ("SAFEGUARD_DEVICE", "tpu", "SAFEGUARD_DEVICE is 'tpu'"),
        ("SAFEGUARD_BACKEND", "vllm", "auto, transformers, openai"),
        ("SAFEGUARD_TIMEOUT_S", "30", "set SAFEGUARD_TIMEOUT_SECONDS instead"),
    ],
)
def test_a_bad_setting_is_refused_at_start_with_its_name(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        EngineConfig.from_env({variable: value})


def test_the_configured_effort_applies_to_a_policy_that_sets_none() -> None:
    from policies.safeguard.types import ReasoningEffort

    engine = get_engine(EngineConfig(reasoning_effort="high", backend="openai"))
    own = policy_spec("p1", "# P\n- R1 Rule.", reasoning_effort=ReasoningEffort.LOW)
    unset = policy_spec("p2", "# P\n- R1 Rule.")
    case = CaseSpec(key="c", content="hello")

    assert unset.reasoning_effort is None
    [(request, _)] = engine.prepare(unset, [case], conversation_date=FIXTURE_DATE)
    assert request.reasoning_effort == "high" and "Reasoning: high" in request.prompt_text
    [(request, _)] = engine.prepare(own, [case], conversation_date=FIXTURE_DATE)
    assert request.reasoning_effort == "low"


@pytest.mark.skipif(_has_cuda(), reason="checks the no-GPU answer")
def test_no_gpu_and_no_server_names_the_setting_that_fixes_it() -> None:
    reason = unavailable_reason(EngineConfig())

    assert reason is not None
    assert "SAFEGUARD_BASE_URL" in reason and "CUDA" in reason
    assert "SAFEGUARD_DEVICE is cuda" in (unavailable_reason(EngineConfig(device="cuda")) or "")


def test_explicit_cpu_or_a_server_url_makes_the_engine_available() -> None:
    assert unavailable_reason(EngineConfig(device="cpu")) is None
    assert unavailable_reason(EngineConfig(base_url="http://127.0.0.1:8000/v1")) is None


@pytest.mark.parametrize(
    ("config", "setting"),
    [
        (EngineConfig(backend="vllm"), "SAFEGUARD_BACKEND"),
        (EngineConfig(backend="openai"), "SAFEGUARD_BASE_URL"),
        (EngineConfig(base_url="gpu:8000"), "SAFEGUARD_BASE_URL"),
        (EngineConfig(model="", device="cpu"), "SAFEGUARD_MODEL"),
        (EngineConfig(device="tpu"), "SAFEGUARD_DEVICE"),
        (EngineConfig(reasoning_effort="max"), "SAFEGUARD_REASONING_EFFORT"),
    ],
)
def test_each_misconfiguration_names_its_setting(config: EngineConfig, setting: str) -> None:
    assert setting in (unavailable_reason(config) or "")


@pytest.mark.skipif(_has_cuda(), reason="checks the no-GPU answer")
def test_unavailable_engine_returns_not_configured_drafts_and_loads_nothing() -> None:
    before = dict(transformers_backend._LOADED)
    cases = [f.case for f in FIXTURE_CASES]

    drafts = get_engine(EngineConfig()).draft(
        fixture_policy(), cases, conversation_date=FIXTURE_DATE
    )

    assert [d.case_key for d in drafts] == [c.key for c in cases]
    assert all(
        d.status is DraftStatus.FAILED and d.failure_reason is FailureReason.NOT_CONFIGURED
        for d in drafts
    )
    assert "SAFEGUARD_BASE_URL" in drafts[0].failure_detail
    assert transformers_backend._LOADED == before
    provenance = drafts[0].provenance
    assert provenance.policy_version_id == "fixture-v1" and len(provenance.prompt_sha256) == 64
    assert provenance.conversation_date == FIXTURE_DATE


def test_engines_are_cached_per_config() -> None:
    assert get_engine(EngineConfig(device="cpu")) is get_engine(EngineConfig(device="cpu"))
    assert get_engine(EngineConfig(device="cpu")) is not get_engine(
        EngineConfig(device="cpu", batch_size=2)
    )


def test_no_cases_means_no_drafts() -> None:
    assert (
        get_engine(EngineConfig()).draft(fixture_policy(), [], conversation_date=FIXTURE_DATE) == []
    )


def test_policy_spec_helper_fills_hash_and_rules() -> None:
    spec = policy_spec("v9", "## Allowed (AB0 - ok)\n- AB0.a fine\n")

    assert [r.id for r in spec.rules] == ["AB0", "AB0.a"]
    assert len(spec.sha256) == 64


def test_policy_authors_check_shows_prompt_size_reasoning_answer_and_cited_rule_text(
    tiny_checkpoint: Path,
) -> None:
    config = EngineConfig(
        backend="transformers", model=str(tiny_checkpoint), device="cpu", max_new_tokens=120
    )

    report = check_policy(
        fixture_policy(), FIXTURE_CASES[1].case.content, config, conversation_date=FIXTURE_DATE
    )

    assert "Prompt: 400 tokens" in report
    assert "Cold promotion with a link and repeated calls to action." in report  # the reasoning
    assert "Answer: VIOLATES; category FX1.a; confidence high" in report
    assert (
        'FX1.a: FX1.a Cold promotion with a link: "Buy followers at cheapfollows.example"' in report
    )
    assert "FX1.b: FX1.b Repeated calls to action" in report


def test_policy_authors_check_explains_an_engine_that_cannot_run() -> None:
    report = check_policy(
        fixture_policy(),
        "hello",
        EngineConfig(backend="openai"),
        conversation_date=dt.date(2026, 1, 1),
    )

    assert "FAILED: not_configured" in report and "SAFEGUARD_BASE_URL" in report


def test_drafts_come_back_in_case_order_with_distinct_prompt_hashes() -> None:
    cases = [CaseSpec(key=str(i), content=f"message {i}") for i in range(5)]

    drafts = get_engine(EngineConfig(backend="openai")).draft(
        fixture_policy(), cases, conversation_date=FIXTURE_DATE
    )

    assert [d.case_key for d in drafts] == [c.key for c in cases]
    assert len({d.provenance.prompt_sha256 for d in drafts}) == 5
