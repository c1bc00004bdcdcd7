"""Signing in and transport security: login throttling (django-axes), the Content Security Policy
(django-csp), HSTS and the https redirect outside debug, the session's lifetime.

Sign-ins go through the real login form with Django's test client; the browser's side (the
lockout page, no CSP violations) is in tests/reviewer/test_browser.py.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
RIGHT = "correct horse battery"


def sign_in(client, username, password, *, address="203.0.113.7"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def fail_times(client, username, times, *, address="203.0.113.7"):
    for attempt in range(times):
        response = sign_in(client, username, f"wrong guess {attempt}", address=address)
        assert response.status_code == 200, f"attempt {attempt + 1} answered {response.status_code}"
        assert b"didn't match" in response.content


# --- login throttling ----------------------------------------------------------------------


def test_the_login_page_says_how_many_failures_lock_an_account(client, alice):
    response = sign_in(client, "alice", "wrong")
    assert b"After 10 wrong passwords in a row an account is locked for 15 minutes" in (
        response.content
    )


def test_ten_wrong_passwords_lock_the_account_even_against_the_right_one(client, alice):
    fail_times(client, "alice", 9)
    assert sign_in(client, "alice", "the tenth wrong one").status_code == 429
    response = sign_in(client, "alice", RIGHT)
    assert response.status_code == 429
    text = response.content.decode()
    assert "Sign-in locked" in text
    assert "after 10 wrong passwords in a row the account is locked" in text
    assert "for 15 minutes after the last attempt" in text
    assert "_auth_user_id" not in client.session


def test_nine_wrong_passwords_then_the_right_one_signs_in_and_starts_the_count_again(client, alice):
    fail_times(client, "alice", 9)
    assert sign_in(client, "alice", RIGHT).status_code == 302
    client.logout()
    fail_times(client, "alice", 9)  # a fresh count: nine more are still answered normally
    assert sign_in(client, "alice", RIGHT).status_code == 302


def test_the_lock_is_per_account_so_colleagues_behind_the_same_address_still_sign_in(
    client, alice, bob
):
    office = "198.51.100.20"
    fail_times(client, "alice", 10 - 1, address=office)
    assert sign_in(client, "alice", "once more", address=office).status_code == 429
    assert sign_in(Client(), "bob", RIGHT, address=office).status_code == 302


def test_the_lock_holds_from_every_address(client, alice):
    # A guesser rotating addresses gets ten tries in all, not ten per address.
    for attempt in range(10):
        sign_in(client, "alice", f"guess {attempt}", address=f"192.0.2.{attempt + 1}")
    assert sign_in(Client(), "alice", RIGHT, address="192.0.2.200").status_code == 429


def test_the_lock_lifts_after_the_cool_off(client, alice, monkeypatch):
    from axes.handlers import proxy

    fail_times(client, "alice", 9)
    assert sign_in(client, "alice", "tenth").status_code == 429
    assert sign_in(client, "alice", RIGHT).status_code == 429
    # axes stamps each request with the clock it reads here; move that clock on.
    real_now = proxy.now
    monkeypatch.setattr(proxy, "now", lambda: real_now() + dt.timedelta(minutes=14))
    assert sign_in(client, "alice", RIGHT).status_code == 429
    monkeypatch.setattr(proxy, "now", lambda: real_now() + dt.timedelta(minutes=16))
    assert sign_in(client, "alice", RIGHT).status_code == 302


def test_failed_sign_ins_are_recorded_with_the_address(client, alice):
    fail_times(client, "alice", 3, address="198.51.100.20")
    attempt = AccessAttempt.objects.get(username="alice")
    assert (attempt.failures_since_start, attempt.ip_address) == (3, "198.51.100.20")


def test_limit_and_cool_off_come_from_the_environment():
    out = _settings_in_child(
        {"AXES_FAILURE_LIMIT": "5", "AXES_COOLOFF_MINUTES": "60"},
        "print(settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME)",
    )
    assert out == "5 1:00:00"


# --- headers outside debug -----------------------------------------------------------------


@pytest.fixture
def production(settings):
    """The transport settings as reviewer/settings.py makes them with DEBUG off (the suite turns
    the redirect off for its plain-http servers; see tests/conftest.py)."""
    settings.DEBUG = False
    settings.SECURE_SSL_REDIRECT = True
    return settings


def test_plain_http_is_redirected_to_https(client, production):
    response = client.get(reverse("login"))
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


def test_https_answers_carry_hsts_csp_and_the_other_security_headers(client, production):
    response = client.get(reverse("login"), secure=True)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000"
    csp = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"
    assert csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self' data:"
    assert csp["media-src"] == "'self'"
    assert csp["object-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_signed_in_pages_carry_the_policy_too(client, production, alice):
    client.force_login(alice)
    response = client.get(reverse("dashboard"), secure=True)
    assert response.status_code == 200
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "Strict-Transport-Security" in response


def test_behind_a_tls_proxy_the_forwarded_header_counts_only_when_configured(client, production):
    forwarded = {"HTTP_X_FORWARDED_PROTO": "https"}
    assert client.get(reverse("login"), **forwarded).status_code == 301
    production.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = Client().get(reverse("login"), **forwarded)
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000"


def test_session_and_csrf_cookies_are_secure_outside_debug():
    out = _settings_in_child(
        {"DEBUG": "false"},
        "print(settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, "
        "settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_AGE, "
        "settings.SECURE_PROXY_SSL_HEADER)",
    )
    assert out == "True True True 31536000 28800 None"


def test_debug_turns_the_https_rules_off():
    out = _settings_in_child(
        {"DEBUG": "true"},
        "print(settings.SESSION_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT, "
        "settings.SECURE_HSTS_SECONDS)",
    )
    assert out == "False False 0"


def test_session_lifetime_and_proxy_header_come_from_the_environment():
    out = _settings_in_child(
        {"SESSION_COOKIE_AGE": "3600", "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto=https"},
        "print(settings.SESSION_COOKIE_AGE, settings.SECURE_PROXY_SSL_HEADER)",
    )
    assert out == "3600 ('HTTP_X_FORWARDED_PROTO', 'https')"


def test_a_malformed_proxy_header_setting_is_refused_by_name():
    with pytest.raises(AssertionError, match="SECURE_PROXY_SSL_HEADER must look like"):
        _settings_in_child({"SECURE_PROXY_SSL_HEADER": "https"}, "print(settings.DEBUG)")


def test_the_session_cookie_lasts_a_working_day(client, alice):
    response = sign_in(client, "alice", RIGHT)
    assert response.status_code == 302
    assert response.cookies["sessionid"]["max-age"] == 8 * 3600


# --- nothing inline for the CSP to refuse --------------------------------------------------

INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\sstyle=", re.I), "a style attribute"),
    (re.compile(r"\son[a-z]+=", re.I), "an inline event handler"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
    (re.compile(r"hx-on|hx-vals=['\"]js:|hx-vars", re.I), "htmx code run by eval"),
]


def test_no_template_needs_inline_script_or_style():
    found = []
    for path in sorted((REPO / "templates").rglob("*.html")):
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            for pattern, what in INLINE:
                if pattern.search(line):
                    found.append(f"{path.relative_to(REPO)}:{line_no}: {what}")
    assert found == []


def _settings_in_child(env: dict[str, str], code: str) -> str:
    """What reviewer/settings.py makes of `env`, read in a fresh process as manage.py would."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("AXES_", "SECURE_", "SESSION_"))
    }
    clean.pop("DEBUG", None)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; " + code,
        ],
        cwd=REPO,
        env={**clean, **env, "DJANGO_SETTINGS_MODULE": "reviewer.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()
