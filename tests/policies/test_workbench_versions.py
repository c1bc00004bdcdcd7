"""Draft versions: checks, token counts and the refusal to edit a published version."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from policies.workbench import versions
from tests.builders import POLICY_TEXT

pytestmark = pytest.mark.django_db


def checks(version):
    return {c.name: c for c in versions.check_version(version)}


def test_a_rule_defined_twice_is_flagged_but_a_labelled_example_is_not(spam_policy, dave):
    assert checks(spam_policy)["rule ids unique"].ok
    examples = versions.create_draft(
        policy=spam_policy.policy,
        text=POLICY_TEXT + '\n## Examples\n- SP2: "Buy now"\n',
        actor=dave,
    )
    assert checks(examples)["rule ids unique"].ok
    twice = versions.create_draft(
        policy=spam_policy.policy, text=POLICY_TEXT + "\nSP2.a Cold promotion again\n", actor=dave
    )
    check = checks(twice)["rule ids unique"]
    assert not check.ok and "SP2.a" in check.detail


def test_the_length_check_follows_the_guidance(spam_policy, dave):
    short = checks(spam_policy)["length"]
    assert not short.ok and "the guidance is 400–600" in short.detail
    long_text = POLICY_TEXT + "\n" + " ".join(["Further guidance for reviewers."] * 100) + "\n"
    draft = versions.create_draft(policy=spam_policy.policy, text=long_text, actor=dave)
    tokens, _exact = versions.count_tokens(long_text)
    assert tokens > 400
    assert checks(draft)["length"].ok == (400 <= tokens <= 600)


def test_an_empty_or_ruleless_draft_is_refused(spam_policy, dave):
    with pytest.raises(ValidationError, match="empty"):
        versions.create_draft(policy=spam_policy.policy, text="  ", actor=dave)
    with pytest.raises(ValidationError, match="no rule ids"):
        versions.create_draft(policy=spam_policy.policy, text="Be nice.", actor=dave)


def test_published_versions_are_never_marked_twice(spam_policy, dave):
    assert versions.mark_published(version=spam_policy, actor=dave) is False


def test_every_publish_path_records_when_and_by_whom(spam_policy, dave):
    from policies.services import import_policy_version, publish_policy_version

    draft = import_policy_version(
        slug="spam", name="Spam", text=POLICY_TEXT + "\nSP5.a Link farms\n", publish=False
    )
    assert draft.published_at is None
    published = publish_policy_version(version=draft, actor=dave, via="command")
    assert published.status == "published"
    assert published.published_at is not None and published.published_by == dave
