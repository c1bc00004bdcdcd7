"""The quickstart's demo data: `make run` loads it every time it starts, so loading it again must
succeed and add nothing."""

from __future__ import annotations

import pytest

from appeals.demo import load_demo
from appeals.models import Case

pytestmark = pytest.mark.django_db


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
