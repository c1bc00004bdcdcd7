"""Near-duplicate groups: detection at intake (appeals/groups/) on real texts from the shared
datasets and on stored images, and the group's life (appeals/review/groups.py): claim, confirm,
remove, decide once with one decision, notice, callback and audit event per member, all or
nothing."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random

import pytest
from django.core.exceptions import ValidationError
from PIL import Image, ImageDraw

from appeals.groups import fingerprints
from appeals.groups import services as grouping
from appeals.media import services as media
from appeals.models import (
    AuditEvent,
    CallbackDelivery,
    Case,
    CaseGroup,
    Decision,
    FingerprintBand,
    GroupMember,
    MediaAsset,
    QueueSetting,
)
from appeals.review import groups
from appeals.review.queueing import LeaseError, claim_case
from tests.builders import appeal, decide, flag
from tests.paths import shared_path

pytestmark = pytest.mark.django_db
Kind = AuditEvent.Kind

SPAM = (
    "Congratulations! You have been selected to receive a free gift card worth $500. "
    "Claim it now at https://prizes.example/claim?ref=8812 before the offer expires tonight."
)


def moderation_texts(count: int) -> list[str]:
    """Real texts of a useful length from the OpenAI moderation evaluation set."""
    path = shared_path("openai-moderation", "samples-1680.jsonl.gz")
    with gzip.open(path, "rt") as lines:
        texts = [json.loads(line)["prompt"].strip() for line in lines]
    return [t for t in texts if 120 <= len(t) <= 400][:count]


def hatecheck_template(templ_id: str) -> list[str]:
    """One HateCheck template filled in for several targets: similar texts, not duplicates."""
    with shared_path("hatecheck", "test_suite_cases.csv").open() as rows:
        return [r["test_case"].strip() for r in csv.DictReader(rows) if r["templ_id"] == templ_id]


def small_edits(text: str) -> str:
    """What a spammer's copies differ by: case, spacing, punctuation, one typo."""
    edited = text.upper()[:1] + text[1:]
    edited = edited.replace(". ", ".  ", 1).rstrip(".!?") + "!!"
    i = len(edited) // 2
    return edited[:i] + edited[i + 1 : i + 2] + edited[i] + edited[i + 2 :]  # swap two letters


def grouped(cases) -> dict[int, int]:
    return grouping.group_near_duplicates([c.id for c in cases]).grouped


def members_of(group_id: int) -> set[int]:
    return set(
        GroupMember.objects.active().filter(group_id=group_id).values_list("case_id", flat=True)
    )


# --- detection ---------------------------------------------------------------------------------


def test_real_texts_with_small_edits_join_one_group_and_the_others_stay_alone(
    platform, spam_policy
):
    texts = moderation_texts(24)
    originals = [flag(platform, content=t) for t in texts]
    copies = [flag(platform, content=small_edits(t)) for t in texts[:4]]
    result = grouped(originals + copies)
    assert set(result) == {c.id for c in originals[:4] + copies}
    for original, copy in zip(originals[:4], copies, strict=True):
        assert result[original.id] == result[copy.id]
        assert members_of(result[original.id]) == {original.id, copy.id}
    assert len(set(result.values())) == 4
    assert CaseGroup.objects.filter(basis="text", status="open").count() == 4
    # The band keys are in the database; the candidates came from there.
    assert FingerprintBand.objects.filter(item_id=copies[0].item_id).count() == len(
        fingerprints.text_band_keys(set("abcde"), 0.85)
    )


def test_candidates_come_from_the_band_key_index(platform, spam_policy):
    from django.db import connection

    # The SQLite run (test_groups_sqlite.py) says which database it meant this to be.
    assert connection.vendor == os.environ.get("GROUPS_EXPECT_VENDOR", connection.vendor)
    case = flag(platform, content=SPAM)
    grouping.fingerprint_item(case.item)
    keys = list(FingerprintBand.objects.filter(item_id=case.item_id).values_list("key", flat=True))
    lookup = FingerprintBand.objects.filter(key__in=keys).values("item_id")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: ask what it could use
        plan = lookup.explain()
    assert "fingerprint_band_key" in plan, plan


def test_similar_texts_from_one_template_are_not_grouped(platform, spam_policy):
    texts = hatecheck_template("117")  # "… slaughter those trans people." for six targets
    assert len(texts) >= 5
    prints = [fingerprints.shingles(fingerprints.normalise(t)) for t in texts]
    # Similar: they share most of their words; yet each says something else.
    assert min(fingerprints.jaccard(prints[0], p) for p in prints[1:]) > 0.5
    cases = [flag(platform, content=t) for t in texts]
    assert grouped(cases) == {}
    assert not CaseGroup.objects.exists()


def test_a_third_copy_joins_the_existing_group_and_running_twice_changes_nothing(
    platform, spam_policy
):
    first, second = flag(platform, content=SPAM), flag(platform, content=SPAM.lower())
    group_id = grouped([first, second])[first.id]
    third = flag(platform, content=SPAM.replace("8812", "9921").replace("tonight", "today"))
    assert grouped([third]) == {third.id: group_id}
    assert grouped([first, second, third]) == {
        first.id: group_id,
        second.id: group_id,
        third.id: group_id,
    }
    assert members_of(group_id) == {first.id, second.id, third.id}
    joined = AuditEvent.objects.filter(kind=Kind.GROUPED)
    assert joined.count() == 3 and {e.data["group_id"] for e in joined} == {group_id}


def test_groups_keep_to_one_queue_kind_and_policy_version_and_skip_short_texts(
    platform, spam_policy
):
    from tests.builders import make_policy

    make_policy(slug="scams", name="Scams")
    spam = flag(platform, content=SPAM, external_id="post-1")
    scam = flag(platform, content=SPAM, policy="scams")
    complaint = appeal(platform, item_external_id="post-1", statement="My own shop's giveaway.")
    assert complaint.item_id == spam.item_id  # an appeal on the same text, in another queue
    assert grouped([spam, scam, complaint]) == {}
    short_a, short_b = flag(platform, content="lol ok"), flag(platform, content="lol ok")
    assert grouped([short_a, short_b]) == {}
    assert grouped([flag(platform, content=SPAM)])  # the same text under the same version


def test_the_group_size_is_capped(platform, spam_policy, settings):
    settings.GROUP_MAX_SIZE = 2
    cases = [flag(platform, content=SPAM + "!" * i) for i in range(3)]
    result = grouped(cases)
    assert len(result) == 2 and cases[2].id not in result


def patterned_png(seed: int, *, size=(160, 120), jitter: int = 0) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(10, 60), rng.randrange(10, 60)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle([x, y, x + w, y + h], fill=colour)
    if jitter:  # a re-encoded, slightly resized, brighter copy
        image = image.resize((size[0] - jitter, size[1] - jitter)).point(lambda v: min(255, v + 6))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if jitter else "PNG", quality=80)
    return buffer.getvalue()


def image_case(platform, content: bytes, kind="png"):
    import base64

    mime = "image/jpeg" if content[:2] == b"\xff\xd8" else "image/png"
    url = f"data:{mime};base64," + base64.b64encode(content).decode()
    case = flag(platform, content=url, content_type="image")
    asset = MediaAsset.objects.get(item_id=case.item_id)
    return case, asset


def test_images_are_grouped_by_the_perceptual_hash_of_our_stored_copy(
    platform, spam_policy, media_storage
):
    original, original_asset = image_case(platform, patterned_png(1))
    copy, copy_asset = image_case(platform, patterned_png(1, jitter=7))
    other, other_asset = image_case(platform, patterned_png(2))
    # Not stored yet: the task waits for our copy rather than reading the platform's.
    assert grouping.group_near_duplicates([original.id]).waiting == [original.id]
    for asset in (original_asset, copy_asset, other_asset):
        assert media.fetch_item_media(asset.id).status == "stored"
    result = grouped([original, copy, other])
    assert set(result) == {original.id, copy.id}
    group = CaseGroup.objects.get(id=result[original.id])
    assert group.basis == "image"
    assert GroupMember.objects.get(case=copy).similarity >= 1 - 6 / 64


# --- the group's life ----------------------------------------------------------------------------


@pytest.fixture
def spam_group(platform, spam_policy):
    platform.callback_url, platform.callback_secret = "https://platform.example/hook", "s" * 32
    platform.save()
    cases = [
        flag(platform, content=SPAM),
        flag(platform, content=SPAM.lower()),
        flag(platform, content=SPAM.replace("$500", "$50O")),
    ]
    group_id = grouped(cases)[cases[0].id]
    return CaseGroup.objects.get(id=group_id), cases


def confirmed(group, reviewer):
    token = groups.claim_group(reviewer=reviewer, group_id=group.id)
    groups.confirm_group(reviewer=reviewer, group_id=group.id, lease_token=token)
    return token


def test_deciding_a_group_writes_one_decision_notice_callback_and_event_per_member(
    spam_group, alice
):
    group, cases = spam_group
    token = confirmed(group, alice)
    decisions = groups.decide_group(
        reviewer=alice,
        group_id=group.id,
        lease_token=token,
        member_ids=[c.id for c in cases],
        outcome="violating",
        action="remove",
        rule_ids=["SP3.a"],
    )
    assert sorted(d.case_id for d in decisions) == sorted(c.id for c in cases)
    for case in cases:
        decision = Decision.objects.get(case=case)
        assert decision.near_duplicate_group_id == group.id and decision.decided_by == alice
        assert decision.notice  # its own notice, stored with it
        delivery = CallbackDelivery.objects.get(decision=decision)
        from appeals.disclosure.callbacks import payload_for

        assert payload_for(decision)["group_id"] == group.id
        assert delivery.status == "pending"
        (event,) = AuditEvent.objects.filter(case=case, kind=Kind.DECIDED)
        assert event.data["group_id"] == group.id
        assert event.data["group_confirmed_by"] == "alice"
        assert event.data["decision_id"] == decision.id
        assert AuditEvent.objects.filter(case=case, kind=Kind.GROUP_CONFIRMED).count() == 1
    assert Decision.objects.count() == 3 and CallbackDelivery.objects.count() == 3
    group.refresh_from_db()
    assert (group.status, group.decided_by) == ("decided", alice)
    # The decision audit names the group on each member's row.
    from appeals.disclosure.export_rows import ExportFilters
    from appeals.disclosure.exports import Export

    export = Export(fmt="jsonl", filters=ExportFilters(), actor_label="test")
    rows = [json.loads(line) for line in "".join(export.chunks()).splitlines()]
    assert sorted(row["case_id"] for row in rows) == sorted(c.id for c in cases)
    assert {row["near_duplicate_group_id"] for row in rows} == {group.id}


def test_a_member_decided_meanwhile_refuses_the_whole_group_naming_it(spam_group, alice, bob):
    group, cases = spam_group
    token = confirmed(group, alice)
    # Alice's lease lapses and Bob decides one member on its own.
    Case.objects.filter(id=cases[1].id).update(lease_expires_at="2000-01-01T00:00:00Z")
    decide(bob, cases[1], "not_violating")
    with pytest.raises(ValidationError) as refused:
        groups.decide_group(
            reviewer=alice,
            group_id=group.id,
            lease_token=token,
            member_ids=[c.id for c in cases],
            outcome="violating",
            action="remove",
            rule_ids=["SP3.a"],
        )
    message = " ".join(refused.value.messages)
    assert f"case {cases[1].id}" in message and "already decided" in message
    assert "Nothing was decided" in message
    assert Decision.objects.count() == 1  # Bob's alone
    assert not Decision.objects.filter(near_duplicate_group=group).exists()
    assert CallbackDelivery.objects.count() == 1
    assert not AuditEvent.objects.filter(kind=Kind.DECIDED, case=cases[0]).exists()


def test_a_blind_first_queue_refuses_the_group_without_each_blind_call(spam_group, alice):
    group, cases = spam_group
    QueueSetting.objects.create(queue="flags", blind_first=True)
    token = confirmed(group, alice)
    with pytest.raises(ValidationError, match=f"case {cases[0].id}.*blind-first"):
        groups.decide_group(
            reviewer=alice,
            group_id=group.id,
            lease_token=token,
            member_ids=[c.id for c in cases],
            outcome="violating",
            action="remove",
            rule_ids=["SP3.a"],
        )
    assert not Decision.objects.exists()


def test_an_appeal_against_the_reviewers_own_decision_cannot_be_claimed_with_the_group(
    platform, spam_policy, carol
):
    originals = [flag(platform, content=SPAM, external_id=f"post-{i}") for i in range(2)]
    decide(carol, originals[1], "violating", "remove", ["SP3.a"])
    statement = "This was a real giveaway run by our shop, not spam at all, please look again."
    appeals_ = [appeal(platform, item_external_id=f"post-{i}", statement=statement) for i in (0, 1)]
    group_id = grouped(appeals_)[appeals_[0].id]
    with pytest.raises(ValidationError, match=f"case {appeals_[1].id}.*contests"):
        groups.claim_group(reviewer=carol, group_id=group_id)
    assert not Case.objects.filter(id__in=[c.id for c in appeals_], claimed_by=carol).exists()


def test_the_group_lease_covers_every_member_and_a_concurrent_claim_fails(spam_group, alice, bob):
    group, cases = spam_group
    token = groups.claim_group(reviewer=alice, group_id=group.id)
    held = Case.objects.filter(id__in=[c.id for c in cases])
    assert {(c.claimed_by_id, c.lease_token) for c in held} == {(alice.id, token)}
    with pytest.raises(LeaseError, match="being reviewed by alice"):
        claim_case(reviewer=bob, case_id=cases[2].id)
    with pytest.raises(ValidationError, match=f"case {cases[0].id}.*being reviewed by alice"):
        groups.claim_group(reviewer=bob, group_id=group.id)
    assert groups.renew_group_lease(reviewer=alice, group_id=group.id, lease_token=token) == 3
    assert AuditEvent.objects.filter(kind=Kind.LEASE_RENEWED).count() == 3
    groups.release_group(reviewer=alice, group_id=group.id, lease_token=token)
    assert not Case.objects.filter(id__in=[c.id for c in cases], claimed_by__isnull=False).exists()
    assert groups.claim_group(reviewer=bob, group_id=group.id)


def test_a_member_held_by_someone_else_blocks_the_group_claim(spam_group, alice, bob):
    group, cases = spam_group
    claim_case(reviewer=bob, case_id=cases[1].id)
    with pytest.raises(ValidationError, match=f"case {cases[1].id}.*being reviewed by bob"):
        groups.claim_group(reviewer=alice, group_id=group.id)
    assert not Case.objects.filter(claimed_by=alice).exists()  # none of them, not some


def test_a_removed_member_is_audited_left_out_and_decided_on_its_own_later(spam_group, alice):
    group, cases = spam_group
    token = groups.claim_group(reviewer=alice, group_id=group.id)
    with pytest.raises(ValidationError, match="say why"):
        groups.remove_member(reviewer=alice, group_id=group.id, case_id=cases[2].id, reason=" ")
    groups.remove_member(
        reviewer=alice, group_id=group.id, case_id=cases[2].id, reason="different prize"
    )
    removed = AuditEvent.objects.get(kind=Kind.GROUP_MEMBER_REMOVED)
    assert (removed.case_id, removed.data) == (
        cases[2].id,
        {"group_id": group.id, "reason": "different prize"},
    )
    groups.confirm_group(reviewer=alice, group_id=group.id, lease_token=token)
    # The page the reviewer had open still listed three: the group changed, nothing is decided.
    with pytest.raises(ValidationError, match=f"left: case {cases[2].id}"):
        groups.decide_group(
            reviewer=alice,
            group_id=group.id,
            lease_token=token,
            member_ids=[c.id for c in cases],
            outcome="violating",
            action="remove",
            rule_ids=["SP3.a"],
        )
    groups.decide_group(
        reviewer=alice,
        group_id=group.id,
        lease_token=token,
        member_ids=[c.id for c in cases[:2]],
        outcome="violating",
        action="remove",
        rule_ids=["SP3.a"],
    )
    assert Case.objects.get(id=cases[2].id).status == "open"
    alone = decide(alice, cases[2], "not_violating")
    assert alone.near_duplicate_group_id is None
    # And it is never grouped again automatically.
    assert grouped([cases[2], flag(platform=cases[0].platform, content=SPAM)]) == {}


def test_an_unconfirmed_group_cannot_be_decided(spam_group, alice):
    group, cases = spam_group
    token = groups.claim_group(reviewer=alice, group_id=group.id)
    with pytest.raises(ValidationError, match="not confirmed"):
        groups.decide_group(
            reviewer=alice,
            group_id=group.id,
            lease_token=token,
            member_ids=[c.id for c in cases],
            outcome="violating",
            action="remove",
            rule_ids=["SP3.a"],
        )


def test_a_newcomer_reopens_a_confirmed_group_for_confirmation(spam_group, alice):
    group, cases = spam_group
    confirmed(group, alice)
    newcomer = flag(platform=cases[0].platform, content=SPAM + " ")
    assert grouped([newcomer]) == {newcomer.id: group.id}
    group.refresh_from_db()
    assert group.status == "open" and group.confirmed_by is None
    assert AuditEvent.objects.get(case=newcomer, kind=Kind.GROUPED).data["needs_confirmation_again"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.integration
def test_a_real_worker_on_the_default_queue_groups_near_duplicates_after_intake(
    platform, spam_policy, tmp_path
):
    import redis
    from django.conf import settings
    from django.db import close_old_connections, connection

    from tests.workers import celery_worker, wait_for

    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://") or connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL and Redis: run through `make test` (scripts/test.sh)")
    redis.Redis.from_url(url).flushdb()
    # Intake enqueues the grouping task on commit; nothing here calls the service.
    first = flag(platform, content=SPAM)
    second = flag(platform, content=SPAM.replace("tonight", "today"))
    alone = flag(platform, content=moderation_texts(1)[0])

    def both_grouped():
        close_old_connections()
        found = GroupMember.objects.active().filter(case_id__in=[first.id, second.id])
        return list(found) if found.count() == 2 else None

    # The quickstart's worker consumes "default,gpu"; grouping needs only "default".
    with celery_worker(broker_url=url, queues="default", log_path=tmp_path / "w.log"):
        members = wait_for(both_grouped, timeout=120, what="the near-duplicate group")
        wait_for(
            lambda: (
                close_old_connections()
                or FingerprintBand.objects.filter(item_id=alone.item_id).exists()
            ),
            timeout=60,
            what="the third case's fingerprint",
        )
    redis.Redis.from_url(url).flushdb()
    assert len({m.group_id for m in members}) == 1
    assert not GroupMember.objects.filter(case_id=alone.id).exists()
    assert AuditEvent.objects.filter(kind=Kind.GROUPED, source="worker").count() == 2


def test_a_member_escalated_on_its_own_refuses_the_group_claim_naming_it(spam_group, alice, carol):
    from appeals.review.queueing import escalate_case

    group, cases = spam_group
    held = claim_case(reviewer=alice, case_id=cases[0].id)
    escalate_case(
        reviewer=alice, case_id=held.id, lease_token=held.lease_token, reason="threatens staff"
    )
    with pytest.raises(ValidationError, match=f"case {cases[0].id}.*moved to the Escalations"):
        groups.claim_group(reviewer=carol, group_id=group.id)
    groups.remove_member(
        reviewer=carol, group_id=group.id, case_id=cases[0].id, reason="escalated on its own"
    )
    assert groups.claim_group(reviewer=carol, group_id=group.id)


def test_the_demos_near_duplicate_spam_forms_one_group(platform, spam_policy):
    from appeals.demo import _near_duplicate_spam
    from appeals.intake import services as intake
    from tests.paths import DATASETS

    shared_path("spam-policy-example")
    cases = [
        intake.receive_item(platform=platform, payload=payload).case
        for payload in _near_duplicate_spam(DATASETS)
    ]
    result = grouped(cases)
    assert set(result) == {c.id for c in cases} and len(set(result.values())) == 1


def test_a_flood_of_copies_is_compared_with_one_member_of_its_group(platform, spam_policy):
    copies = [flag(platform, content=f"{SPAM} #{i}") for i in range(12)]
    group_id = grouped(copies)[copies[0].id]
    assert members_of(group_id) == {c.id for c in copies}
    newcomer = flag(platform, content=f"{SPAM} #new")
    printed = grouping.fingerprint_item(newcomer.item)
    # Twelve items share its band keys; one stands for their group.
    assert [c.id for c in grouping._candidates(newcomer, printed)] == [copies[0].id]
    assert grouped([newcomer]) == {newcomer.id: group_id}
