"""`draft_stream` with a server: cases read only as requests free, drafts handed back as they
finish, never more than SAFEGUARD_MAX_CONCURRENCY requests at the server."""

from __future__ import annotations

import datetime as dt

import pytest

from bench.openai_standin import StandinServer
from policies.safeguard import (
    CaseSpec,
    DraftStatus,
    Engine,
    EngineConfig,
    FailureReason,
    policy_spec,
    unavailable_reason,
)
from policies.safeguard.stream import draft_stream
from tests import safeguard_fixtures as fx

DATE = dt.date(2026, 1, 5)


def test_a_server_stream_reads_cases_as_requests_free_and_keeps_the_pool_full():
    policy = policy_spec("1", fx.FIXTURE_POLICY_TEXT)
    pulled: list[int] = []

    def cases():
        for i in range(24):
            pulled.append(i)
            yield CaseSpec(key=f"c{i}", content=f"case {i}")

    with StandinServer(latency_s=0.2) as server:
        engine = Engine(EngineConfig(base_url=server.base_url, model="standin", max_concurrency=4))
        stream = draft_stream(engine, policy, cases(), conversation_date=DATE)
        first = next(stream)
        # At most one round in flight and one round waiting: the rest is still unread.
        assert len(pulled) <= 8
        drafts = [first, *stream]
    assert sorted(d.case_key for d in drafts) == sorted(f"c{i}" for i in range(24))
    assert {d.status for d in drafts} == {DraftStatus.READY}
    assert server.peak_in_flight == 4 and server.requests == 24


def test_a_stream_with_nothing_configured_says_which_setting_fixes_it():
    config = EngineConfig(backend="transformers", device="auto")
    if unavailable_reason(config) is None:
        pytest.skip("a CUDA GPU is present: the in-process engine is available")
    cases = [CaseSpec(key=f"c{i}", content="x") for i in range(3)]
    drafts = list(
        draft_stream(
            Engine(config), policy_spec("1", fx.FIXTURE_POLICY_TEXT), cases, conversation_date=DATE
        )
    )
    assert [d.failure_reason for d in drafts] == [FailureReason.NOT_CONFIGURED] * 3
    assert all("SAFEGUARD" in d.failure_detail for d in drafts)
