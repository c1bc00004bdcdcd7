"""The quickstart's demo data: `make run` loads it every time it starts, so loading it again must
succeed and add nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from appeals.demo import load_demo
from appeals.models import Case
from tests.paths import shared_path

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


def test_loading_the_demo_twice_adds_nothing_the_second_time(roles):
    first = load_demo(cases=12, password="demo-password-1")
    assert first.cases_created > 0
    assert first.appeals_created == 3
    counts = (Case.objects.filter(kind="flag").count(), Case.objects.filter(kind="appeal").count())

    second = load_demo(cases=12, password="demo-password-1")
    assert (second.cases_created, second.appeals_created) == (0, 0)
    assert second.policies == first.policies
    assert (
        Case.objects.filter(kind="flag").count(),
        Case.objects.filter(kind="appeal").count(),
    ) == counts


def test_a_demo_loaded_by_an_earlier_version_loads_again(roles):
    load_demo(cases=12, password="demo-password-1")
    # Earlier versions stamped the appeals' original decision with the time of loading.
    Case.objects.filter(kind="appeal").update(request_sha256="0" * 64)
    again = load_demo(cases=12, password="demo-password-1")
    assert (again.cases_created, again.appeals_created) == (0, 0)


# --- existing accounts are never touched --------------------------------------------------


def _manage(*args: str, database_url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MIGRATION_DATABASE_URL": "",
        "DJANGO_SETTINGS_MODULE": "reviewer.settings",
        "CELERY_BROKER_URL": "memory://",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _this_test_database_url() -> str:
    """The database this test runs on, for a child process (committed rows: transaction=True)."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_load_demo_leaves_existing_accounts_exactly_as_they_were(roles, settings):
    if connection.vendor != "postgresql":
        pytest.fail("this test runs load_demo in a child process against the suite's PostgreSQL")
    # The child hashes with Django's default; this process must be able to check those too.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    User = get_user_model()
    # A real installation: an `admin` who is deliberately not a superuser, a `reviewer` who is
    # someone's actual account with its own password and no demo role.
    User.objects.create_user("admin", password="the admin's own password", is_staff=False)
    User.objects.create_user("reviewer", password="a real reviewer's password")
    before = {
        u.username: (u.password, u.is_staff, u.is_superuser, u.last_login)
        for u in User.objects.all()
    }
    datasets = str(shared_path("openai-moderation").parent)
    url = _this_test_database_url()

    out = _manage(
        "load_demo",
        "--datasets",
        datasets,
        "--cases",
        "5",
        "--password",
        "demo-pass-1",
        database_url=url,
    ).stdout
    assert (
        "Existing accounts left as they were (password and rights unchanged): reviewer, admin"
        in out
    )
    assert "New demo logins (all share one password): senior, auditor, policyadmin" in out
    assert "Password: demo-pass-1" in out
    after = {
        u.username: (u.password, u.is_staff, u.is_superuser, u.last_login)
        for u in User.objects.filter(username__in=before)
    }
    assert after == before
    admin = User.objects.get(username="admin")
    assert not admin.is_superuser and admin.check_password("the admin's own password")
    reviewer = User.objects.get(username="reviewer")
    assert reviewer.check_password("a real reviewer's password")
    assert not reviewer.groups.exists()
    senior = User.objects.get(username="senior")
    assert (
        senior.check_password("demo-pass-1")
        and senior.groups.filter(name="senior_reviewer").exists()
    )

    # Run again, as `make run` does on every start: every account now exists; none changes and
    # no password is printed, because none was set.
    before = {u.username: u.password for u in User.objects.all()}
    out = _manage("load_demo", "--datasets", datasets, "--cases", "5", database_url=url).stdout
    assert "Password:" not in out
    assert {u.username: u.password for u in User.objects.all()} == before


def test_a_fresh_database_gets_every_demo_login_with_admin_as_superuser(roles):
    summary = load_demo(cases=3, password="demo-password-1")
    assert summary.users_created == ("reviewer", "senior", "auditor", "policyadmin", "admin")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo-password-1")


def test_demo_texts_are_filed_only_under_policies_that_cover_them():
    from appeals.demo import LABEL_TO_POLICY, _moderation_items
    from tests.paths import DATASETS

    items = _moderation_items(DATASETS, limit=400)
    assert items
    covered = {slug: keys for keys, slug in LABEL_TO_POLICY}
    for item in items:
        labels = item.metadata["labels"]
        positive = {k for k, v in labels.items() if v == 1}
        assert "SH" not in positive, item.external_id  # no demo policy covers self-harm
        if positive:
            assert positive & set(covered[item.policy]), (item.external_id, item.policy)
