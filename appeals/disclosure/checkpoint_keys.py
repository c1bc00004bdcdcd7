"""The Ed25519 keys of the audit checkpoints: where they come from, how they are read, and the
default key the embedded quickstart generates. Never stored in the database."""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

logger = logging.getLogger(__name__)

DEFAULT_KEY_FILENAME = "audit-checkpoint-key.pem"


class CheckpointError(Exception):
    """Base class: something about checkpoints that an operator has to fix."""


class CheckpointKeyError(CheckpointError):
    """The signing or verifying key is missing, unreadable or not an Ed25519 key."""


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _parse_private_key(text: str, *, source: str) -> Ed25519PrivateKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            raw = base64.b64decode(text, validate=True)
            if len(raw) != 32:
                raise ValueError(f"{len(raw)} bytes after base64, an Ed25519 seed is 32")
            key = Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, TypeError, binascii.Error) as error:
        raise CheckpointKeyError(
            f"{source} is not an Ed25519 private key (PEM, or 32 bytes in base64): {error}"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(f"{source} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _parse_public_key(text: str, *, source: str) -> Ed25519PublicKey:
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            raw = base64.b64decode(text, validate=True)
            if len(raw) != 32:
                raise ValueError(f"{len(raw)} bytes after base64, an Ed25519 public key is 32")
            key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, binascii.Error) as error:
        raise CheckpointKeyError(
            f"{source} is not an Ed25519 public key (PEM, or 32 bytes in base64): {error}"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointKeyError(f"{source} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _read_key_file(path: str | Path, *, setting: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise CheckpointKeyError(f"{setting}: cannot read {path}: {error.strerror}") from None


def default_key_path() -> Path:
    return Path(settings.VAR_DIR) / DEFAULT_KEY_FILENAME


def _generate_default_key(path: Path) -> None:
    """The embedded default: a key made once into the var dir, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first: use theirs
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    logger.warning("generated an audit checkpoint signing key in %s", path)


def signing_key(*, create: bool = True) -> Ed25519PrivateKey | None:
    """The private key from AUDIT_CHECKPOINT_KEY or AUDIT_CHECKPOINT_KEY_FILE, else the var dir's.

    With `create`, the embedded default generates the var dir's key on first use; without it, a
    missing default key is None (a machine that only verifies).
    """
    inline = settings.AUDIT_CHECKPOINT_KEY
    path = settings.AUDIT_CHECKPOINT_KEY_FILE
    if inline and path:
        raise CheckpointKeyError("set AUDIT_CHECKPOINT_KEY or AUDIT_CHECKPOINT_KEY_FILE, not both")
    if inline:
        return _parse_private_key(inline, source="AUDIT_CHECKPOINT_KEY")
    if path:
        text = _read_key_file(path, setting="AUDIT_CHECKPOINT_KEY_FILE")
        return _parse_private_key(text, source=f"AUDIT_CHECKPOINT_KEY_FILE ({path})")
    default = default_key_path()
    if not default.exists():
        if not create:
            return None
        _generate_default_key(default)
    text = _read_key_file(default, setting="the default checkpoint key")
    return _parse_private_key(text, source=str(default))


def verify_only() -> bool:
    """True on a machine that holds a public key and no signing key (an auditor's)."""
    configured_public = bool(
        settings.AUDIT_CHECKPOINT_PUBLIC_KEY or settings.AUDIT_CHECKPOINT_PUBLIC_KEY_FILE
    )
    return configured_public and signing_key(create=False) is None


def verifying_key() -> Ed25519PublicKey | None:
    """The public key from AUDIT_CHECKPOINT_PUBLIC_KEY[_FILE], else derived from the private key.

    An auditor's machine sets only the public key: it can verify checkpoints, never sign one.
    """
    inline = settings.AUDIT_CHECKPOINT_PUBLIC_KEY
    path = settings.AUDIT_CHECKPOINT_PUBLIC_KEY_FILE
    if inline and path:
        raise CheckpointKeyError(
            "set AUDIT_CHECKPOINT_PUBLIC_KEY or AUDIT_CHECKPOINT_PUBLIC_KEY_FILE, not both"
        )
    if inline:
        return _parse_public_key(inline, source="AUDIT_CHECKPOINT_PUBLIC_KEY")
    if path:
        text = _read_key_file(path, setting="AUDIT_CHECKPOINT_PUBLIC_KEY_FILE")
        return _parse_public_key(text, source=f"AUDIT_CHECKPOINT_PUBLIC_KEY_FILE ({path})")
    private = signing_key(create=False)
    return private.public_key() if private is not None else None
