"""Every console address, driven with generated ids, cursors, filters and form data: never a 500.

The addresses are enumerated from the URL patterns (`reviewer/pages.py`), not
listed by hand, so a new page is covered the day it is added. Each is requested as every persona
(reviewer, senior reviewer, policy admin, auditor, someone with no role) with GET and POST, with
path parameters that are real ids or anything an address can carry ('/', NUL, huge integers,
unicode), and query strings and form fields drawn from the same pool, including cursors that are
base64 of nested JSON-ish text. `make test` (CI) runs it on PostgreSQL, where a NUL in a query
is an error rather than a string.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appeals.models import Case, Queue, QueueSetting
from appeals.review import queueing
from policies.models import PolicyRule, PolicyVersion
from reviewer.pages import urlpatterns as page_patterns
from tests.builders import appeal, decide, flag
from tests.reviewer.drafts import ready_draft

pytestmark = pytest.mark.django_db

ROUTES = [p.pattern._route for p in page_patterns]
PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")

NASTY = [
    "a/b",
    "a\x00b",
    "\x00",
    "%00",
    "..",
    "../..",
    "%2F",
    "SP2.b",
    "flags",
    "appeals",
    "escalations",
    "規則",
    "\U0001f600",
    "\u202e",
    "<script>x</script>",
    "' OR 1=1 --",
    "9" * 60,
    "-1",
    "1e999",
    "NaN",
    " ",
]
text = st.sampled_from(NASTY) | st.text(max_size=30)
huge_ints = st.integers(min_value=0, max_value=10**40)


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode("utf-8", "surrogatepass")).decode().rstrip("=")


json_ish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=12,
)
cursors = st.one_of(
    json_ish.map(lambda value: _b64(json.dumps(value))),
    st.integers(min_value=1, max_value=200_000).map(lambda n: _b64("[" * n + "]" * n)),
    st.integers(min_value=1, max_value=5_000).map(lambda n: _b64('{"a":' * n)),
    st.tuples(huge_ints, text, text, huge_ints).map(lambda t: _b64(json.dumps(list(t)))),
    text,
)
QUERY_KEYS = [
    "after",
    "policy",
    "source",
    "status",
    "verdict",
    "agreement",
    "reveal",
    "since",
    "until",
    "pseudonymise",
    "q",
]
FORM_KEYS = ["outcome", "action", "rule_ids", "note", "reason", "accepted_recommendation"]


@pytest.fixture
def casework(alice, bob, carol, dave, erin, mallory, platform, spam_policy):
    """A little of everything: open, drafted, decided, escalated, appealed (rule "a/b")."""
    QueueSetting.objects.create(queue=Queue.FLAGS, blind_first=True)
    ready_draft(flag(platform, content="a drafted flag", external_id="x/\u202e/1"))
    decided = flag(platform, external_id="decided")
    decide(
        bob,
        decided,
        outcome="violating",
        action="remove",
        rule_ids=["SP2.b"],
        blind_call="violating",
    )
    escalated = flag(platform, content="escalate me")
    lease = queueing.claim_case(reviewer=bob, case_id=escalated.id).lease_token
    queueing.escalate_case(reviewer=bob, case_id=escalated.id, lease_token=lease, reason="odd")
    appeal(platform, item_external_id="decided", rule_ids=("a/b", "SP2.b", "<i>"))
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "dave": dave,
        "erin": erin,
        "mallory": mallory,
    }


def _real_ids() -> list[int]:
    return [
        *Case.objects.values_list("id", flat=True),
        *PolicyVersion.objects.values_list("id", flat=True),
    ]


def _path_value(data, converter: str, name: str) -> str:
    """Mostly real values (so the page behind the address is reached), else anything."""
    if converter == "int":
        real = st.sampled_from(_real_ids())
        return str(data.draw(st.one_of(real, real, real, huge_ints), label=name))
    real = st.sampled_from(
        Queue.values
        if name == "queue"
        else sorted(PolicyRule.objects.values_list("rule_id", flat=True))
    )
    value = data.draw(st.one_of(real, st.sampled_from(NASTY), text), label=name)
    return quote(value, safe=data.draw(st.sampled_from(["", "/"]), label="safe"))


def _values(data, key: str):
    if key == "after":
        return data.draw(cursors, label="after")
    if key == "lease_token":
        tokens = [
            str(t)
            for t in Case.objects.exclude(lease_token=None).values_list("lease_token", flat=True)
        ]
        return data.draw(st.sampled_from([*tokens, str(uuid.uuid4())]) | text, label=key)
    return data.draw(
        st.one_of(
            st.sampled_from(
                ["1", "open", "decided", "violating", "overturn", "uphold", "remove", "agree"]
            ),
            text,
            huge_ints.map(str),
        ),
        label=key,
    )


def _request(client, data, route: str, *, method: str | None = None):
    path = "/" + PARAM.sub(lambda m: _path_value(data, m.group(1) or "str", m.group(2)), route)
    keys = data.draw(st.sets(st.sampled_from(QUERY_KEYS), max_size=4), label="query keys")
    if "queues/" in route and data.draw(st.booleans(), label="cursor"):
        keys.add("after")  # the queue list's cursor is the likeliest poison
    query = {key: _values(data, key) for key in sorted(keys)}
    method = method or data.draw(st.sampled_from(["get", "post"]), label="method")
    if method == "post":
        fields = data.draw(st.sets(st.sampled_from(FORM_KEYS), max_size=4), label="form keys")
        form = {key: _values(data, key) for key in sorted(fields)}
        form["lease_token"] = _values(data, "lease_token")
        suffix = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
        response = client.post(path + ("?" + suffix if suffix else ""), form)
    else:
        htmx = data.draw(st.booleans(), label="htmx")
        response = client.get(path, query, headers={"HX-Request": "true"} if htmx else {})
    return path, query, response


@pytest.mark.parametrize("route", ROUTES)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_console_address_answers_500(casework, route, data):
    # Weighted to the two who work cases (the reviewer and the senior), but everyone is tried.
    persona = data.draw(
        st.sampled_from(["alice", "carol"]) | st.sampled_from(sorted(casework)), label="persona"
    )
    client = Client()
    client.force_login(casework[persona])
    path, query, response = _request(client, data, route)
    assert response.status_code < 500, (persona, path, query, response.status_code)
