"""A revoked API token stays revoked, whatever an admin, the ORM or the application's SQL does,
and revoking is an audit event.

The adversary is a staff member (or a stolen staff session) who wants a revoked platform token
back: through the admin's forms, a queryset update, or raw SQL on the application's connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client

from appeals.audit import verify_chain
from appeals.intake import tokens
from appeals.models import ApiToken, AuditEvent

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
ITEM = {"external_id": "post-1", "policy": "spam", "content": "Buy gold rings here!"}


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "", "correct horse battery")


@pytest.fixture
def issued(platform, spam_policy):
    token, raw = tokens.create_api_token(platform=platform, name="acme production")
    return token, raw


@pytest.fixture
def revoked(issued, root):
    token, raw = issued
    tokens.revoke_api_token(token=token, source=AuditEvent.Source.ADMIN, actor=root)
    token.refresh_from_db()
    return token, raw


def intake_status(raw: str) -> int:
    return (
        Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
        .post("/api/v1/items", json.dumps(ITEM), content_type="application/json")
        .status_code
    )


def still_revoked(token: ApiToken, raw: str) -> None:
    stored = ApiToken.objects.get(id=token.id).revoked_at
    assert stored == token.revoked_at and stored is not None
    assert intake_status(raw) == 401


class _FormFields(HTMLParser):
    """The fields a browser would submit from the admin's change form."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in {"submit", "checkbox"}:
            self.fields[name] = attrs.get("value") or ""
        elif tag == "input" and name and "checked" in attrs:
            self.fields[name] = attrs.get("value") or "on"
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None


def form_fields(response) -> dict[str, str]:
    parser = _FormFields()
    parser.feed(response.content.decode())
    return parser.fields


# --- revoking -------------------------------------------------------------------------------


def test_revoking_writes_one_audit_event_naming_the_token_and_who(issued, root):
    token, raw = issued
    assert intake_status(raw) == 201
    tokens.revoke_api_token(token=token, source=AuditEvent.Source.ADMIN, actor=root)
    first = ApiToken.objects.get().revoked_at
    tokens.revoke_api_token(
        token=token, source=AuditEvent.Source.ADMIN, actor=root
    )  # again: the first time stays, no event
    assert ApiToken.objects.get().revoked_at == first
    events = list(AuditEvent.objects.filter(kind=AuditEvent.Kind.TOKEN_REVOKED))
    assert len(events) == 1
    event = events[0]
    assert (event.case_id, event.actor_id, event.actor_label) == (None, root.id, "root")
    assert event.data["token_id"] == token.id
    assert event.data["prefix"] == token.prefix
    assert event.data["platform"] == "acme"
    assert verify_chain().ok
    assert intake_status(raw) == 401


def test_the_admin_action_revokes_and_audits_as_the_staff_member(issued, root, client):
    token, raw = issued
    client.force_login(root)
    response = client.post(
        "/admin/appeals/apitoken/",
        {"action": "revoke", "_selected_action": [token.id]},
        follow=True,
    )
    assert response.status_code == 200
    assert b"Revoked 1 token(s); this cannot be undone." in response.content
    assert ApiToken.objects.get().revoked_at is not None
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.TOKEN_REVOKED)
    assert event.actor_id == root.id
    assert intake_status(raw) == 401


def test_the_revoke_command_revokes_by_prefix_and_audits(issued):
    token, raw = issued
    call_command("revoke_api_token", token.prefix)
    assert ApiToken.objects.get().revoked_at is not None
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.TOKEN_REVOKED)
    assert event.actor_label == "manage.py revoke_api_token"
    assert intake_status(raw) == 401


# --- un-revoking, every way an admin might try -----------------------------------------------


def test_the_token_change_form_cannot_clear_revoked_at(revoked, root, client):
    token, raw = revoked
    client.force_login(root)
    url = f"/admin/appeals/apitoken/{token.id}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert b'name="revoked_at' not in page.content  # shown, not editable
    fields = form_fields(page)
    fields.update({"revoked_at_0": "", "revoked_at_1": "", "revoked_at": "", "_save": "Save"})
    response = client.post(url, fields)
    assert response.status_code in (302, 403)
    still_revoked(token, raw)


def test_the_platform_form_cannot_clear_revoked_at_through_its_token_rows(
    revoked, root, client, platform
):
    token, raw = revoked
    client.force_login(root)
    url = f"/admin/appeals/platform/{platform.id}/change/"
    page = client.get(url)
    assert page.status_code == 200
    fields = form_fields(page)
    assert fields["tokens-TOTAL_FORMS"] == "1"
    fields.update(
        {
            "tokens-0-id": str(token.id),
            "tokens-0-platform": str(platform.id),
            "tokens-0-revoked_at_0": "",
            "tokens-0-revoked_at_1": "",
            "tokens-0-revoked_at": "",
            "_save": "Save",
        }
    )
    response = client.post(url, fields)
    assert response.status_code == 302, response.content.decode()[:2000]
    still_revoked(token, raw)


def test_there_is_no_delete_in_the_admin_for_tokens(revoked, root, client):
    token, _ = revoked
    client.force_login(root)
    response = client.post(f"/admin/appeals/apitoken/{token.id}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert ApiToken.objects.filter(id=token.id).exists()


def test_saving_the_model_with_revoked_at_cleared_is_refused(revoked):
    token, raw = revoked
    token.revoked_at = None
    with pytest.raises(ValidationError, match="stays revoked"):
        token.save()
    still_revoked(ApiToken.objects.get(), raw)


def test_saving_the_model_cannot_revoke_around_the_audited_service(issued):
    token, _ = issued
    from django.utils import timezone

    token.revoked_at = timezone.now()
    with pytest.raises(ValidationError, match="revoke_api_token"):
        token.save()
    assert ApiToken.objects.get().revoked_at is None


def test_a_queryset_update_clearing_revoked_at_is_refused_by_the_database(revoked):
    token, raw = revoked
    with pytest.raises(DatabaseError, match="stays revoked"), transaction.atomic():
        ApiToken.objects.filter(id=token.id).update(revoked_at=None)
    still_revoked(token, raw)


def test_raw_sql_clearing_or_moving_revoked_at_is_refused_by_the_database(revoked):
    token, raw = revoked
    for sql, params in [
        ("UPDATE appeals_apitoken SET revoked_at = NULL WHERE id = %s", [token.id]),
        ("UPDATE appeals_apitoken SET revoked_at = NULL", []),
        (
            "UPDATE appeals_apitoken SET revoked_at = %s WHERE id = %s",
            ["2999-01-01 00:00:00+00:00", token.id],
        ),
    ]:
        with pytest.raises(DatabaseError, match="stays revoked"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
    still_revoked(token, raw)


def test_the_guard_leaves_other_columns_and_live_tokens_alone(revoked, platform):
    token, _ = revoked
    ApiToken.objects.filter(id=token.id).update(name="renamed after revocation")
    live, live_raw = tokens.create_api_token(platform=platform, name="live")
    ApiToken.objects.filter(id=live.id).update(name="live, renamed")
    assert intake_status(live_raw) == 201
    tokens.revoke_api_token(token=live, source=AuditEvent.Source.ADMIN)
    assert intake_status(live_raw) == 401


SQLITE_SCRIPT = r"""
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.db import DatabaseError, connection, transaction
from appeals.intake import tokens
from appeals.models import ApiToken, AuditEvent
from tests import builders

token, raw = tokens.create_api_token(platform=builders.make_platform(), name="acme")
tokens.revoke_api_token(token=token, source=AuditEvent.Source.ADMIN)
refused = []
for attempt in ("orm", "sql"):
    try:
        with transaction.atomic():
            if attempt == "orm":
                ApiToken.objects.filter(id=token.id).update(revoked_at=None)
            else:
                with connection.cursor() as cursor:
                    cursor.execute("UPDATE appeals_apitoken SET revoked_at = NULL")
    except DatabaseError as exc:
        refused.append(str(exc))
print(json.dumps({"refused": refused, "revoked": ApiToken.objects.get().revoked_at is not None}))
"""


def test_on_sqlite_too_the_database_refuses_un_revoking(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'appeals.sqlite3'}",
        "MIGRATION_DATABASE_URL": "",
        "DJANGO_SETTINGS_MODULE": "reviewer.settings",
        "CELERY_BROKER_URL": "memory://",
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        [sys.executable, "-c", SQLITE_SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["revoked"] is True
    assert len(out["refused"]) == 2
    assert all("stays revoked" in message for message in out["refused"])
