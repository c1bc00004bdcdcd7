"""Signing in under django-axes: the login page says the limit, and the page a locked-out
sign-in gets (axes calls `locked_out` via AXES_LOCKOUT_CALLABLE) says why and for how long,
answered with 429 so that scripts see the refusal too.
"""

from __future__ import annotations

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.shortcuts import render


def _minutes(cool_off) -> int | None:
    return max(1, round(cool_off.total_seconds() / 60)) if cool_off else None


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["axes_failure_limit"] = settings.AXES_FAILURE_LIMIT
        context["axes_cooloff_minutes"] = _minutes(settings.AXES_COOLOFF_TIME)
        return context


def locked_out(request, original_response=None, credentials=None):
    cool_off = get_cool_off(request)
    context = {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": get_failure_limit(request, credentials),
        "cooloff_minutes": _minutes(cool_off),
    }
    return render(request, "registration/locked_out.html", context, status=429)
