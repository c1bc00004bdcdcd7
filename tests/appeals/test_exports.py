"""Decision-audit exports: what an auditor downloads, and what it must never leak or run."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from appeals.disclosure.export_columns import Pseudonymiser, neutralise
from appeals.disclosure.exports import COLUMNS, Export, ExportFilters
from appeals.models import AuditEvent
from tests.builders import appeal, decide, flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

REASONING = "SECRET-CHAIN-OF-THOUGHT the model mulled it over"
RATIONALE = "SECRET-RATIONALE it is an ad"


@pytest.fixture
def casework(alice, bob, carol, platform, spam_policy):
    """alice removes an ad the model also called (then carol overturns it on appeal); bob clears
    a post with no draft; alice labels a post whose ids would run as spreadsheet formulas."""
    ad = flag(platform, external_id="ad-1", author_id="author-7", reporter_id="reporter-3")
    ready_draft(ad, violation=True, rule_ids=["SP2.b"], reasoning=REASONING, rationale=RATIONALE)
    removed = decide(
        alice,
        ad,
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
        note="internal: obvious ad",
    )
    hello = flag(
        platform, content="Hi Sam, here is the report.", external_id="hello-2", author_id="author-8"
    )
    cleared = decide(bob, hello, outcome="not_violating")
    evil = flag(
        platform,
        content="Click =1+1",
        external_id='=HYPERLINK("http://x")',
        author_id="@author-9",
        reporter_id="-reporter",
    )
    labelled = decide(alice, evil, outcome="violating", action="label", rule_ids=["SP2.a"])
    complaint = appeal(
        platform, item_external_id="ad-1", appellant_id="author-7", rule_ids=["SP2.b"]
    )
    overturned = decide(carol, complaint, outcome="overturn")
    return {"removed": removed, "cleared": cleared, "labelled": labelled, "overturned": overturned}


def run(fmt="csv", **filters):
    export = Export(fmt=fmt, filters=ExportFilters(**filters), actor_label="test")
    return export, "".join(export.chunks())


def csv_rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_one_row_per_decided_case_with_the_model_beside_the_person(casework):
    export, text = run()
    rows = {int(r["decision_id"]): r for r in csv_rows(text)}
    assert text.splitlines()[0].split(",") == list(COLUMNS)
    assert len(rows) == export.rows == 4

    removed = rows[casework["removed"].id]
    assert removed["case_kind"] == "flag"
    assert removed["platform"] == "acme"
    assert removed["item_external_id"] == "ad-1"
    assert (removed["outcome"], removed["action"], removed["rule_ids"]) == (
        "violating",
        "remove",
        "SP2.b",
    )
    assert removed["reviewer"] == "alice"
    assert removed["model_verdict"] == "violating"
    assert removed["model_rule_ids"] == "SP2.b"
    assert removed["model_confidence"] == "high"
    assert removed["model_id"] == "openai/gpt-oss-safeguard-20b"
    assert removed["agrees_with_model"] == "true"
    assert removed["accepted_recommendation"] == "true"
    assert int(removed["received_to_decided_seconds"]) >= 0
    assert int(removed["claimed_to_decided_seconds"]) >= 0
    assert removed["decided_late"] == "false"
    assert removed["appeal_outcome"] == "overturn"

    cleared = rows[casework["cleared"].id]
    assert cleared["recommendation_id"] == ""
    assert cleared["model_verdict"] == ""
    assert cleared["agrees_with_model"] == ""
    assert cleared["appeal_outcome"] == ""

    overturned = rows[casework["overturned"].id]
    assert overturned["case_kind"] == "appeal"
    assert overturned["appellant_id"] == "author-7"
    assert overturned["original_action"] == "remove"
    assert overturned["appealed_decision_id"] == str(casework["removed"].id)
    assert overturned["reviewer"] == "carol"


def test_no_reasoning_rationale_or_internal_note_is_exported(casework):
    for fmt in ("csv", "jsonl", "dsa"):
        _, text = run(fmt)
        assert "SECRET" not in text
        assert "internal: obvious ad" not in text


def test_the_notice_is_in_the_row(casework):
    _, text = run()
    rows = {int(r["decision_id"]): r for r in csv_rows(text)}
    notice = rows[casework["removed"].id]["notice"]
    assert "SP2.b: Irrelevant ads" in notice
    assert "the content has been removed" in notice


def test_every_row_carries_exactly_the_notice_the_platform_is_given(casework):
    from appeals.disclosure.notices import notice_for
    from appeals.models import Decision

    expected = {d.id: notice_for(d) for d in Decision.objects.all()}
    _, text = run()
    assert {int(r["decision_id"]): r["notice"] for r in csv_rows(text)} == expected
    _, lines = run("jsonl")
    records = [json.loads(line) for line in lines.splitlines()]
    assert {r["decision_id"]: r["notice"] for r in records} == expected
    assert any("\n" in notice and '"' in notice for notice in expected.values())


def test_cells_a_spreadsheet_would_run_are_neutralised(casework):
    _, text = run()
    row = next(r for r in csv_rows(text) if int(r["decision_id"]) == casework["labelled"].id)
    assert row["case_external_id"] == '\'=HYPERLINK("http://x")'
    assert row["author_id"] == "'@author-9"
    assert row["reporter_id"] == "'-reporter"
    for cell in [c for r in csv_rows(text) for c in r.values()]:
        assert not cell.startswith(("=", "+", "@", "\t", "\r")), cell


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_neutralise_quotes_formula_starts(cell):
    assert neutralise(cell) == "'" + cell
    assert neutralise("plain") == "plain"


def test_pseudonymised_export_hides_ids_and_keeps_them_linkable(casework):
    _, first = run(pseudonymise=True)
    _, second = run(pseudonymise=True)
    assert first == second  # stable across exports
    for raw in ("author-7", "author-8", "reporter-3", "alice", "bob", "carol"):
        assert raw not in first
    rows = {int(r["decision_id"]): r for r in csv_rows(first)}
    removed, overturned = rows[casework["removed"].id], rows[casework["overturned"].id]
    # The author of the item and the appellant against its removal are the same person.
    assert overturned["appellant_id"] == removed["author_id"]
    assert removed["author_id"].startswith("u_") and len(removed["author_id"]) == 18
    assert removed["reviewer"].startswith("r_")
    assert removed["reviewer"] == rows[casework["labelled"].id]["reviewer"]  # both alice


def test_pseudonyms_depend_on_the_key(settings):
    settings.EXPORT_PSEUDONYM_KEY = "one key"
    one = Pseudonymiser().platform_user("acme", "author-7")
    settings.EXPORT_PSEUDONYM_KEY = "another key"
    assert Pseudonymiser().platform_user("acme", "author-7") != one
    assert Pseudonymiser().platform_user("acme", "") == ""


def test_filters_by_policy_and_time(casework, platform):
    from django.utils import timezone

    assert run(policy="spam")[0].rows == 4
    assert run(policy="no-such-policy")[0].rows == 0
    now = timezone.now()
    assert run(until=now - timezone.timedelta(days=1))[0].rows == 0
    assert run(since=now - timezone.timedelta(days=1))[0].rows == 4
    assert run(since=now + timezone.timedelta(seconds=1))[0].rows == 0


def test_jsonl_keeps_types(casework):
    _, text = run("jsonl")
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 4
    removed = next(r for r in rows if r["decision_id"] == casework["removed"].id)
    assert removed["rule_ids"] == ["SP2.b"]
    assert removed["agrees_with_model"] is True
    assert isinstance(removed["received_to_decided_seconds"], int)
    assert removed["case_external_id"] == "ad-1"


def test_each_export_is_recorded_in_the_audit_log(casework, erin):
    export = Export(
        fmt="jsonl", filters=ExportFilters(policy="spam", pseudonymise=True), actor=erin
    )
    "".join(export.chunks())
    event = AuditEvent.objects.filter(kind="exported").latest("id")
    assert event.actor == erin
    assert event.actor_label == "erin"
    assert event.case is None
    assert event.data == {
        "format": "jsonl",
        "rows": 4,
        "records": 4,
        "completed": True,
        "filters": {"since": None, "until": None, "policy": "spam", "pseudonymise": True},
    }


def test_an_abandoned_download_is_recorded_as_incomplete(casework):
    export = Export(fmt="csv", filters=ExportFilters(), actor_label="test", rows_per_chunk=1)
    chunks = export.chunks()
    next(chunks)
    chunks.close()
    event = AuditEvent.objects.filter(kind="exported").latest("id")
    assert event.data["completed"] is False


def test_the_rows_are_read_by_one_query_a_chunk_at_a_time(casework):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(chunk_size):
        export = Export(
            fmt="csv", filters=ExportFilters(), actor_label="test", chunk_size=chunk_size
        )
        with CaptureQueriesContext(connection) as captured:
            "".join(export.chunks())
        assert export.rows == 4
        return [q["sql"] for q in captured.captured_queries]

    one_at_a_time, all_at_once = queries(1), queries(100)
    assert len(one_at_a_time) == len(all_at_once) <= 14  # nothing per row or per chunk
    assert sum('FROM "appeals_decision"' in q for q in all_at_once) == 1


def test_command_writes_the_file(casework, tmp_path):
    target = tmp_path / "decisions.csv"
    call_command(
        "export_decisions",
        "--format",
        "csv",
        "--output",
        str(target),
        "--policy",
        "spam",
        "--since",
        "2020-01-01",
        "--pseudonymise",
    )
    rows = csv_rows(target.read_text())
    assert len(rows) == 4
    assert not (tmp_path / "decisions.csv.partial").exists()
    event = AuditEvent.objects.filter(kind="exported").latest("id")
    assert event.actor_label.startswith("manage.py export_decisions")
    assert event.data["filters"]["since"] == "2020-01-01T00:00:00+00:00"


def test_command_refuses_an_unknown_policy_and_a_bad_date(casework, tmp_path):
    with pytest.raises(CommandError, match="no policy"):
        call_command("export_decisions", "--output", str(tmp_path / "x"), "--policy", "nope")
    with pytest.raises(CommandError, match="is not a date"):
        call_command("export_decisions", "--output", str(tmp_path / "x"), "--since", "yesterday")


def test_auditor_downloads_a_streamed_csv(casework, client, erin):
    client.force_login(erin)
    page = client.get("/exports/")
    assert page.status_code == 200
    assert b"Download CSV" in page.content
    response = client.get("/exports/decisions.csv", {"policy": "spam", "pseudonymise": "on"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="decisions.csv"' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode()
    assert len(csv_rows(text)) == 4
    assert "author-7" not in text
    event = AuditEvent.objects.filter(kind="exported").latest("id")
    assert (event.actor, event.data["format"], event.data["rows"]) == (erin, "csv", 4)


def test_the_exports_page_is_in_the_auditors_navigation_only(client, erin, alice):
    client.force_login(erin)
    assert b'href="/exports/"' in client.get("/").content
    client.force_login(alice)
    assert b'href="/exports/"' not in client.get("/").content


def test_dsa_download_from_the_console(casework, client, erin):
    client.force_login(erin)
    response = client.get("/exports/statements-of-reasons.jsonl")
    assert response.status_code == 200
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert [len(json.loads(line)["statements"]) for line in lines] == [2]


def test_bad_dates_come_back_to_the_form(client, erin):
    client.force_login(erin)
    response = client.get("/exports/decisions.csv", {"since": "2026-02-01", "until": "2026-01-01"})
    assert response.status_code == 400
    assert "must be after" in response.content.decode()


@pytest.mark.parametrize("who", ["alice", "carol", "mallory"])
def test_only_auditors_may_export(request, client, who):
    client.force_login(request.getfixturevalue(who))
    assert client.get("/exports/").status_code == 403
    assert client.get("/exports/decisions.csv").status_code == 403
    assert not AuditEvent.objects.filter(kind="exported").exists()


def test_the_postgres_fast_reader_returns_what_the_orm_does(casework):
    from django.db import connection

    from appeals.disclosure.export_rows import _FIELDS, raw_chunks, rows_queryset

    if connection.vendor != "postgresql":
        pytest.skip("the prefetching server-side cursor is PostgreSQL only")
    json_at = [
        i
        for i, name in enumerate(_FIELDS)
        if name.endswith(("rule_ids", "original_mismatch")) or name in ("appeal", "dsa_mapping")
    ]

    def decoded(row):  # the fast reader leaves JSON as text, for `_row` to decode
        return tuple(
            json.loads(v) if i in json_at and v is not None else v for i, v in enumerate(row)
        )

    fast = [decoded(row) for chunk in raw_chunks(ExportFilters(), chunk_size=3) for row in chunk]
    assert fast == list(rows_queryset(ExportFilters()))
    assert len(fast) == 4


def test_times_and_durations_are_the_decisions_own(casework):
    from appeals.models import Decision

    _, text = run()
    _, lines = run("jsonl")
    records = {r["decision_id"]: r for r in map(json.loads, lines.splitlines())}
    for row in csv_rows(text):
        decision = Decision.objects.select_related("case__item").get(id=row["decision_id"])
        case = decision.case
        expected = {
            "received_at": case.created_at.isoformat(timespec="microseconds"),
            "flagged_at": case.item.flagged_at
            and case.item.flagged_at.isoformat(timespec="microseconds"),
            "due_at": case.due_at.isoformat(timespec="microseconds"),
            "claimed_at": decision.claimed_at.isoformat(timespec="microseconds"),
            "decided_at": decision.decided_at.isoformat(timespec="microseconds"),
            "received_to_decided_seconds": int(
                (decision.decided_at - case.created_at).total_seconds()
            ),
            "claimed_to_decided_seconds": int(
                (decision.decided_at - decision.claimed_at).total_seconds()
            ),
            "decided_late": decision.decided_at > case.due_at,
        }
        assert {k: records[decision.id][k] for k in expected} == expected
        assert {k: row[k] for k in expected} == {
            k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in expected.items()
        }
    overturned = records[casework["overturned"].id]
    removed = records[casework["removed"].id]
    assert removed["appeal_decided_at"] == overturned["decided_at"]


def test_whole_seconds_truncate_as_python_does(casework):
    import datetime as dt

    from appeals.models import Case, Decision

    decision = Decision.objects.get(id=casework["cleared"].id)
    case = decision.case
    # 90.999999 s after receipt, and a decision before its receipt (a clock set back).
    for late, expected in ((dt.timedelta(seconds=90.999999), 90), (-dt.timedelta(seconds=2.5), -2)):
        Case.objects.filter(id=case.id).update(created_at=decision.decided_at - late)
        _, lines = run("jsonl")
        record = next(
            r for r in map(json.loads, lines.splitlines()) if r["decision_id"] == decision.id
        )
        assert record["received_to_decided_seconds"] == expected


def test_prefetched_chunks_come_in_order_and_a_failure_reaches_the_reader():
    from appeals.disclosure.export_rows import _prefetched

    assert list(_prefetched(iter([[1], [2, 3], [4]]))) == [[1], [2, 3], [4]]

    def failing():
        yield [1]
        raise ConnectionError("server closed the connection")

    chunks = _prefetched(failing())
    assert next(chunks) == [1]
    with pytest.raises(ConnectionError, match="server closed"):
        next(chunks)


def test_an_abandoned_prefetch_stops_its_thread_before_returning():
    import threading

    from appeals.disclosure.export_rows import _prefetched

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield [n]
            n += 1

    chunks = _prefetched(endless(), depth=2)
    assert next(chunks) == [0]
    chunks.close()
    assert not any(t.name == "export-prefetch" for t in threading.enumerate())
    assert len(produced) <= 4  # the one read, the two queued, the one it was putting


def test_an_abandoned_postgres_export_leaves_the_connection_usable(casework):
    import threading

    from django.db import connection

    export = Export(fmt="csv", filters=ExportFilters(), actor_label="test", chunk_size=1)
    export.rows_per_chunk = 1
    chunks = export.chunks()
    next(chunks)
    next(chunks)
    chunks.close()
    assert not any(t.name == "export-prefetch" for t in threading.enumerate())
    assert AuditEvent.objects.filter(kind="exported").latest("id").data["completed"] is False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
