"""`manage.py import_cases` and `manage.py create_api_token`, as an operator runs them."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from appeals.intake import tokens
from appeals.models import ApiToken, AuditEvent, Case, Item, Platform, Recommendation

pytestmark = pytest.mark.django_db


def run_import(tmp_path, lines: list, *args) -> tuple[str, str, CommandError | None]:
    path = tmp_path / "cases.jsonl"
    path.write_bytes(
        b"\n".join(
            line
            if isinstance(line, bytes)
            else (line if isinstance(line, str) else json.dumps(line)).encode()
            for line in lines
        )
        + b"\n"
    )
    out, err = io.StringIO(), io.StringIO()
    failure = None
    try:
        call_command("import_cases", str(path), *args, stdout=out, stderr=err)
    except CommandError as error:
        failure = error
    return out.getvalue(), err.getvalue(), failure


def item(external_id: str, **fields) -> dict:
    return {
        "external_id": external_id,
        "policy": "spam",
        "content": "Buy gold rings here!",
        **fields,
    }


def appeal(external_id: str, item_external_id: str, **fields) -> dict:
    decided_at = (timezone.now() - dt.timedelta(days=1)).isoformat()
    return {
        "external_id": external_id,
        "item_external_id": item_external_id,
        "statement": "It was my own shop.",
        "original_decision": {"outcome": "remove", "decided_at": decided_at},
        **fields,
    }


def test_good_lines_are_imported_and_each_bad_line_is_reported_by_number(
    tmp_path, platform, spam_policy
):
    out, err, failure = run_import(
        tmp_path,
        [
            item("a"),  # 1
            item("b", content=""),  # 2: blank content
            "",  # 3: empty, skipped
            "{not json",  # 4
            item("c", policy="fraud"),  # 5: unknown policy
            appeal("ap-1", "a"),  # 6: appeals the item on line 1
            appeal("ap-2", "zzz"),  # 7: unknown item, no content
            item("d", colour="red"),  # 8: unknown field
            b"\xff\xfe",  # 9: not UTF-8
            "[1, 2]",  # 10: not an object
            item("e"),  # 11
        ],
        "--platform",
        "acme",
    )
    assert failure is not None and failure.returncode == 1
    assert set(Item.objects.values_list("external_id", flat=True)) == {"a", "e"}
    assert Case.objects.filter(kind="appeal").get().item.external_id == "a"
    assert Recommendation.objects.count() == 3
    assert AuditEvent.objects.filter(kind="received").count() == 3
    assert set(AuditEvent.objects.values_list("source", flat=True)) == {"command"}
    lines = err.splitlines()
    assert lines == [
        "line 2: content: String should have at least 1 character",
        lines[1],
        "line 5: policy: no policy with slug 'fraud'",
        "line 7: content: is required when the item is not in the system yet",
        "line 8: colour: is not a known field",
        "line 9: (line): is not valid UTF-8",
        "line 10: (line): must be a JSON object",
    ]
    assert lines[1].startswith("line 4: (line): is not valid JSON")
    assert "10 lines read: 3 created, 0 already here, 7 failed, 1 empty lines skipped." in out


def test_importing_the_same_file_twice_counts_the_second_run_as_already_here(
    tmp_path, platform, spam_policy
):
    lines = [item("a"), item("b"), appeal("ap-1", "a")]
    run_import(tmp_path, lines, "--platform", "acme")
    out, err, failure = run_import(tmp_path, lines, "--platform", "acme")
    assert failure is None and err == ""
    assert "3 lines read: 0 created, 3 already here, 0 failed." in out
    assert Case.objects.count() == 3


def test_items_go_in_batches_and_repeats_in_the_file_are_caught(tmp_path, platform, spam_policy):
    lines = [item(f"i-{n}") for n in range(7)] + [item("i-0", content="changed")]
    out, err, failure = run_import(tmp_path, lines, "--platform", "acme", "--batch-size", "3")
    assert failure is not None
    assert err.splitlines() == [
        "line 8: external_id: 'i-0' was already received with a different body"
    ]
    assert Case.objects.count() == 7


def test_import_into_a_new_platform_creates_it(tmp_path, spam_policy):
    out, _, failure = run_import(tmp_path, [item("a")])
    assert failure is None
    assert "Created platform 'default'." in out
    assert Case.objects.get().platform.slug == "default"


def test_missing_file_is_a_command_error(tmp_path, spam_policy):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_cases", str(tmp_path / "nope.jsonl"), stdout=io.StringIO())


def test_create_api_token_prints_the_token_as_its_last_line_and_stores_only_its_hash(db):
    out = io.StringIO()
    call_command("create_api_token", "acme production", "--platform", "acme", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert token.platform == Platform.objects.get(slug="acme")
    assert (
        token.token_sha256 == tokens.hash_token(raw) and raw not in out.getvalue().splitlines()[:-1]
    )
    assert tokens.authenticate_token(raw) == token


def test_create_api_token_uses_the_default_platform_unless_told(db):
    call_command("create_api_token", "ops", stdout=io.StringIO())
    assert ApiToken.objects.get().platform.slug == "default"


def test_create_api_token_refuses_a_platform_that_is_not_a_slug(db):
    with pytest.raises(CommandError):
        call_command("create_api_token", "ops", "--platform", "not a slug", stdout=io.StringIO())
    assert ApiToken.objects.count() == 0
