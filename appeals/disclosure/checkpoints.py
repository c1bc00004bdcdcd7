"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain (`appeals.audit`) shows that no event was changed *relative to the events around
it*; someone who holds the database can still empty the table or rebuild a consistent chain.
A checkpoint pins the head as it was (the head event's id and hash, how many events led up to it,
when) with an Ed25519 signature by a key the database never sees, in a storage the database
cannot reach (the Certificate Transparency idea, RFC 6962/9162). `verify_audit` then checks the
chain against every checkpoint it can read, and names a truncation, a rewrite or a rebuilt chain.

What belongs here: the checkpoint format, writing and reading checkpoint files, and comparing
the chain with them; the keys are in `checkpoint_keys.py`. The chain itself is read only through `appeals.audit` and the
`AuditEvent` model.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages
from django.utils import timezone

from appeals.audit import GENESIS_HASH, event_hash
from appeals.disclosure.checkpoint_keys import (  # noqa: F401  (part of this module's interface)
    DEFAULT_KEY_FILENAME,
    CheckpointError,
    CheckpointKeyError,
    default_key_path,
    key_id,
    public_key_pem,
    signing_key,
    verify_only,
    verifying_key,
)
from appeals.models import AuditEvent

logger = logging.getLogger(__name__)

FORMAT = "appeals-audit-checkpoint/1"
# Signed bytes start with the format, so a signature made for anything else never verifies here.
SIGNING_CONTEXT = (FORMAT + "\n").encode()
# <signed time>-event<head id>-<sha256 of the file's bytes, 16 hex>.json: names sort by time,
# and a file edited after writing no longer matches its own name.
NAME_RE = re.compile(r"^(?P<time>\d{8}T\d{12}Z)-event(?P<head>\d+)-(?P<digest>[0-9a-f]{16})\.json$")
PAYLOAD_FIELDS = {
    "head_event_id": (int, type(None)),
    "head_hash": (str,),
    "head_created_at": (str, type(None)),
    "events": (int,),
    "signed_at": (str,),
    "key_id": (str,),
}


class CheckpointExists(CheckpointError):
    """A checkpoint file by that name is already there: checkpoints are never overwritten."""


class ChainDoesNotExtendCheckpoint(CheckpointError):
    """The chain is not a continuation of the newest checkpoint: refuse to sign it."""


def checkpoint_storage() -> Storage:
    return storages[settings.AUDIT_CHECKPOINT_STORAGE]


# --- The checkpoint ------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A verified checkpoint: the chain's head as it was when `signed_at`."""

    name: str
    head_event_id: int | None
    head_hash: str
    head_created_at: str | None
    events: int
    signed_at: str
    key_id: str

    def describe(self) -> str:
        head = f"event {self.head_event_id}" if self.head_event_id is not None else "no event"
        return (
            f"checkpoint {self.name} ({self.events} events, head {head}, signed {self.signed_at})"
        )


@dataclass(frozen=True)
class RefusedCheckpoint:
    """A file in the checkpoint location that is not a checkpoint we can trust, and why."""

    name: str
    reason: str


def canonical_payload(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_payload(payload: dict, private_key: Ed25519PrivateKey) -> dict:
    signature = private_key.sign(SIGNING_CONTEXT + canonical_payload(payload))
    return {
        "format": FORMAT,
        "payload": payload,
        "signature": base64.b64encode(signature).decode(),
    }


def _file_bytes(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, indent=2).encode() + b"\n"


def checkpoint_name(*, signed_at: dt.datetime, head_event_id: int | None, content: bytes) -> str:
    digest = hashlib.sha256(content).hexdigest()[:16]
    stamp = signed_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-event{head_event_id or 0}-{digest}.json"


@dataclass(frozen=True)
class ChainHead:
    head_event_id: int | None
    head_hash: str
    head_created_at: str | None
    events: int


def _walk_from(start: Checkpoint | None) -> ChainHead:
    """Check that the chain continues `start` (or the genesis) link by link; return its head.

    Rows are read as model instances and hashed by `audit.event_hash`, so whatever fields an
    event's hash covers are covered here too.
    """
    if start is not None and start.head_event_id is not None:
        stored = (
            AuditEvent.objects.filter(id=start.head_event_id).values_list("hash", flat=True).first()
        )
        if stored is None:
            raise ChainDoesNotExtendCheckpoint(
                f"event {start.head_event_id}, the head of {start.describe()}, is gone"
            )
        if stored != start.head_hash:
            raise ChainDoesNotExtendCheckpoint(
                f"event {start.head_event_id} no longer has the hash {start.describe()} signed"
            )
        count = AuditEvent.objects.filter(id__lte=start.head_event_id).count()
        if count != start.events:
            raise ChainDoesNotExtendCheckpoint(
                f"{count} events lead up to event {start.head_event_id}; "
                f"{start.describe()} counted {start.events}"
            )
        after_id, prev_hash, events = start.head_event_id, start.head_hash, start.events
    else:
        if start is not None and start.events:
            raise ChainDoesNotExtendCheckpoint(f"{start.describe()} is malformed")
        after_id, prev_hash, events = 0, GENESIS_HASH, 0
    head: AuditEvent | None = None
    for event in AuditEvent.objects.filter(id__gt=after_id).order_by("id").iterator(2000):
        if event.prev_hash != prev_hash or event_hash(event) != event.hash:
            raise ChainDoesNotExtendCheckpoint(
                f"event {event.id} does not link to the chain before it"
            )
        prev_hash = event.hash
        events += 1
        head = event
    if head is None:
        if start is None:
            return ChainHead(None, GENESIS_HASH, None, 0)
        return ChainHead(start.head_event_id, start.head_hash, start.head_created_at, start.events)
    return ChainHead(head.id, head.hash, head.created_at.astimezone(dt.UTC).isoformat(), events)


def latest_checkpoint(
    *, public_key: Ed25519PublicKey, storage: Storage | None = None
) -> Checkpoint | None:
    """The newest checkpoint that verifies, reading files newest first (names sort by time)."""
    storage = storage or checkpoint_storage()
    try:
        _dirs, names = storage.listdir("")
    except FileNotFoundError:
        return None
    for name in sorted((n for n in names if NAME_RE.match(n)), reverse=True):
        try:
            with storage.open(name, "rb") as handle:
                return parse_checkpoint(name, handle.read(), public_key)
        except ValueError as error:
            logger.error("audit checkpoint %s refused: %s", name, error)
    return None


def write_checkpoint(
    *, now: dt.datetime | None = None, skip_if_unchanged: bool = False
) -> Checkpoint:
    """Sign the chain's head and store it as a new file. The periodic task and `verify_audit`.

    Refuses (ChainDoesNotExtendCheckpoint) when the chain is not a continuation of the newest
    checkpoint that verifies: signing a rewritten chain would launder the rewrite. With
    `skip_if_unchanged` (the periodic task), a head the newest checkpoint already signed is not
    signed again; that checkpoint is returned.
    """
    private_key = signing_key(create=True)
    public_key = private_key.public_key()
    configured = verifying_key()
    if configured is not None and key_id(configured) != key_id(public_key):
        raise CheckpointKeyError(
            f"the signing key (key id {key_id(public_key)}) does not match the configured public "
            f"key (key id {key_id(configured)}): its checkpoints would not verify"
        )
    storage = checkpoint_storage()
    latest = latest_checkpoint(public_key=public_key, storage=storage)
    head = _walk_from(latest)
    if skip_if_unchanged and latest is not None and head.head_hash == latest.head_hash:
        return latest
    signed_at = now or timezone.now()
    payload = {
        "head_event_id": head.head_event_id,
        "head_hash": head.head_hash,
        "head_created_at": head.head_created_at,
        "events": head.events,
        "signed_at": signed_at.astimezone(dt.UTC).isoformat(),
        "key_id": key_id(public_key),
    }
    content = _file_bytes(sign_payload(payload, private_key))
    name = checkpoint_name(signed_at=signed_at, head_event_id=head.head_event_id, content=content)
    if storage.exists(name):
        raise CheckpointExists(f"{name} already exists: checkpoints are never overwritten")
    saved = storage.save(name, ContentFile(content))
    if saved != name:
        # The backend picked another name instead of refusing: that name would not verify.
        storage.delete(saved)
        raise CheckpointExists(f"{name} already exists: checkpoints are never overwritten")
    logger.info(
        "audit checkpoint %s: %s events, head event %s", name, head.events, head.head_event_id
    )
    return Checkpoint(name=name, **payload)


# --- Reading and checking ------------------------------------------------------------------


def parse_checkpoint(name: str, content: bytes, public_key: Ed25519PublicKey) -> Checkpoint:
    """Verify one checkpoint file. Raises ValueError naming what is wrong with it."""
    match = NAME_RE.match(name)
    if match is None:
        raise ValueError("not a checkpoint file name (<time>-event<id>-<digest>.json)")
    if hashlib.sha256(content).hexdigest()[:16] != match["digest"]:
        raise ValueError("its content does not match the digest in its name: the file was edited")
    try:
        document = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"malformed: not JSON ({error})") from None
    if not isinstance(document, dict) or set(document) != {"format", "payload", "signature"}:
        raise ValueError("malformed: expected exactly format, payload and signature")
    if document["format"] != FORMAT:
        raise ValueError(f"malformed: format {document['format']!r}, expected {FORMAT!r}")
    payload = document["payload"]
    if not isinstance(payload, dict) or set(payload) != set(PAYLOAD_FIELDS):
        raise ValueError(f"malformed: the payload must have exactly {', '.join(PAYLOAD_FIELDS)}")
    for key, types in PAYLOAD_FIELDS.items():
        if type(payload[key]) not in types:
            raise ValueError(f"malformed: payload field {key} has the wrong type")
    expected = key_id(public_key)
    if payload["key_id"] != expected:
        raise ValueError(
            f"signed with key id {payload['key_id']}, not the configured key {expected}: "
            "forged, or signed by a key this machine does not trust"
        )
    try:
        signature = base64.b64decode(document["signature"], validate=True)
        public_key.verify(signature, SIGNING_CONTEXT + canonical_payload(payload))
    except (InvalidSignature, binascii.Error, TypeError, ValueError):
        raise ValueError("bad signature: forged, or altered after signing") from None
    if int(match["head"]) != (payload["head_event_id"] or 0):
        raise ValueError("its name names another head event than its payload")
    return Checkpoint(name=name, **payload)


def read_checkpoints(
    *, public_key: Ed25519PublicKey, storage: Storage | None = None
) -> tuple[list[Checkpoint], list[RefusedCheckpoint]]:
    """Every checkpoint in the location, verified, oldest head first; and the files refused."""
    storage = storage or checkpoint_storage()
    try:
        _dirs, names = storage.listdir("")
    except FileNotFoundError:
        return [], []
    good: list[Checkpoint] = []
    refused: list[RefusedCheckpoint] = []
    for name in sorted(names):
        try:
            with storage.open(name, "rb") as handle:
                content = handle.read()
            good.append(parse_checkpoint(name, content, public_key))
        except ValueError as error:
            refused.append(RefusedCheckpoint(name, str(error)))
    good.sort(key=lambda c: (c.head_event_id or 0, c.events, c.signed_at))
    return good, refused


@dataclass(frozen=True)
class Finding:
    """The chain disagrees with a checkpoint: `kind` is emptied, truncated, rebuilt or rewritten."""

    checkpoint: Checkpoint
    kind: str
    detail: str

    def describe(self) -> str:
        return f"{self.kind} since {self.checkpoint.describe()}: {self.detail}"


@dataclass
class CheckpointReport:
    checkpoints: list[Checkpoint] = field(default_factory=list)
    refused: list[RefusedCheckpoint] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def latest(self) -> Checkpoint | None:
        return max(self.checkpoints, key=lambda c: c.signed_at) if self.checkpoints else None


def compare_chain(checkpoints: Iterable[Checkpoint], *, chunk_size: int = 5000) -> list[Finding]:
    """One pass over the chain's (id, hash) in id order, against every checkpoint's head.

    The chain's own links are checked by `audit.verify_chain`; this only asks whether the head
    each checkpoint signed is still there, with the same hash and the same number of events up to
    it.
    """
    pending = sorted(
        (c for c in checkpoints if c.head_event_id is not None), key=lambda c: c.head_event_id
    )
    seen: dict[int, tuple[str, int]] = {}
    wanted = {c.head_event_id for c in pending}
    count = 0
    last_id = 0
    while True:
        chunk = list(
            AuditEvent.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "hash")[:chunk_size]
        )
        if not chunk:
            break
        for id_, hash_ in chunk:
            count += 1
            if id_ in wanted:
                seen[id_] = (hash_, count)
            last_id = id_
    findings = []
    for c in pending:
        if count == 0:
            findings.append(
                Finding(c, "emptied", f"the log has 0 events; the checkpoint counted {c.events}")
            )
        elif c.head_event_id not in seen and last_id < c.head_event_id:
            findings.append(
                Finding(
                    c,
                    "truncated",
                    f"the chain ends at event {last_id} with {count} events; the checkpoint "
                    f"signed events up to {c.head_event_id} ({c.events} events): "
                    "events were removed",
                )
            )
        elif c.head_event_id not in seen:
            findings.append(
                Finding(
                    c,
                    "rebuilt",
                    f"event {c.head_event_id}, the head the checkpoint signed, is gone while the "
                    f"chain goes on to event {last_id}: the chain was rebuilt (a fork)",
                )
            )
        elif seen[c.head_event_id][0] != c.head_hash:
            findings.append(
                Finding(
                    c,
                    "rewritten",
                    f"event {c.head_event_id} has hash {seen[c.head_event_id][0][:12]}…, the "
                    f"checkpoint signed {c.head_hash[:12]}…: it or an event before it was "
                    "rewritten",
                )
            )
        elif seen[c.head_event_id][1] != c.events:
            findings.append(
                Finding(
                    c,
                    "rewritten",
                    f"{seen[c.head_event_id][1]} events lead up to event {c.head_event_id}, the "
                    f"checkpoint counted {c.events}: events before it were removed or inserted",
                )
            )
    return findings


def check_chain_against_checkpoints(
    *, public_key: Ed25519PublicKey | None, chunk_size: int = 5000
) -> CheckpointReport:
    """Read every checkpoint and compare the chain with each. Needs only the public key."""
    storage = checkpoint_storage()
    if public_key is None:
        try:
            _dirs, names = storage.listdir("")
        except FileNotFoundError:
            names = []
        if names:
            raise CheckpointKeyError(
                f"{len(names)} checkpoint files but no key to verify them: set "
                "AUDIT_CHECKPOINT_PUBLIC_KEY or AUDIT_CHECKPOINT_PUBLIC_KEY_FILE"
            )
        return CheckpointReport()
    checkpoints, refused = read_checkpoints(public_key=public_key, storage=storage)
    findings = compare_chain(checkpoints, chunk_size=chunk_size) if checkpoints else []
    return CheckpointReport(checkpoints, refused, findings)
