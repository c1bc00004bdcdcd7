"""Near-duplicate fingerprints, framework-free: plain strings and bytes in, band keys out.

Texts: normalised (Unicode NFKC, case folded, links cut to their host, punctuation and runs of
space collapsed), cut into 5-character shingles, summarised by a MinHash (`datasketch`); the
MinHash is split into LSH bands (datasketch picks the number of bands and rows for a threshold a
little below the similarity asked for) and each band becomes one key. Two texts share a key
when they are probably about that similar; the exact Jaccard of their shingles then decides.

Images: a perceptual hash (`imagehash.phash`, 64 bits) of our stored copy. Two hashes at most
`t` bits apart agree exactly on at least one of `t + 1` chunks of the hash (pigeonhole), so each
chunk becomes one key and the Hamming distance then decides.

The keys are stored in the database (FingerprintBand), which is the only index: finding
candidates is an indexed `key IN (...)` lookup on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import hashlib
import io
import re
import unicodedata
import zlib
from dataclasses import dataclass
from functools import lru_cache

SHINGLE = 5
NUM_PERM = 128
SEED = 7
MINHASH_SCHEME = "affine32"
# LSH bands tuned for recall: a false candidate costs one exact comparison, a miss costs a group.
# The bands are shaped for a threshold LSH_MARGIN below the similarity asked for, so a pair right
# at that similarity is still found: at 0.85, 16 bands of 8 rows find 99.4% of pairs at 0.85 and
# all from 0.9, while 6% of pairs at 0.5 become candidates (and are then turned away).
LSH_WEIGHTS = (0.2, 0.8)
LSH_MARGIN = 0.1
IMAGE_BITS = 64

_LINK = re.compile(r"(?:https?://|www\.)([^/\s?#]+)\S*", re.IGNORECASE)
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    """The text as compared: what a spammer's small variations (case, spacing, punctuation,
    tracking parameters in links, look-alike Unicode forms) do not change."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    text = _LINK.sub(lambda match: f" {match.group(1)} ", text)
    return _NOT_WORD.sub(" ", text).strip()


def shingles(normalised: str) -> set[str]:
    if len(normalised) <= SHINGLE:
        return {normalised} if normalised else set()
    return {normalised[i : i + SHINGLE] for i in range(len(normalised) - SHINGLE + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


@lru_cache(maxsize=8)
def lsh_shape(threshold: float) -> tuple[int, int]:
    """(bands, rows per band) for the similarity threshold, as datasketch's LSH chooses them."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(
        threshold=max(0.3, threshold - LSH_MARGIN), num_perm=NUM_PERM, weights=LSH_WEIGHTS
    )
    return lsh.b, lsh.r


def text_scheme(threshold: float) -> str:
    bands, rows = lsh_shape(threshold)
    return f"text:minhash{NUM_PERM}{MINHASH_SCHEME}crc32:s{SHINGLE}:b{bands}r{rows}"


@lru_cache(maxsize=1)
def _permutations():
    """The MinHash's random permutations, made once (stable: a fixed seed)."""
    from datasketch import MinHash

    return MinHash(num_perm=NUM_PERM, seed=SEED, scheme=MINHASH_SCHEME).permutations


def _crc32(data: bytes) -> int:
    # Stable across processes and machines (unlike hash()), and done in C: the shingles' hash
    # is most of a MinHash's cost, and the MinHash's own permutations supply the randomness.
    return zlib.crc32(data)


def _key(prefix: str, scheme: str, band: int, payload: bytes) -> str:
    digest = hashlib.blake2b(f"{scheme}|{band}|".encode() + payload, digest_size=10)
    return prefix + digest.hexdigest()[:23]


def text_band_keys(grams: set[str], threshold: float) -> list[str]:
    """The LSH band keys of a text's shingles."""
    from datasketch import MinHash

    minhash = MinHash(
        num_perm=NUM_PERM,
        seed=SEED,
        hashfunc=_crc32,
        permutations=_permutations(),
        scheme=MINHASH_SCHEME,  # pinned: a library default changing would change every key
    )
    minhash.update_batch([gram.encode() for gram in sorted(grams)])
    bands, rows = lsh_shape(threshold)
    values = minhash.hashvalues
    scheme = text_scheme(threshold)
    return [
        _key("t", scheme, band, values[band * rows : (band + 1) * rows].tobytes())
        for band in range(bands)
    ]


def image_scheme(max_bits: int) -> str:
    return f"image:phash{IMAGE_BITS}:c{max_bits + 1}"


def image_hash(content: bytes) -> str:
    """The 64-bit perceptual hash of an image, in hex. Raises ValueError if it is not one."""
    import imagehash
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(content)) as image:
            return str(imagehash.phash(image.convert("RGB")))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"not a readable image: {error}") from None


def _bits(hex_hash: str) -> str:
    return format(int(hex_hash, 16), f"0{IMAGE_BITS}b")


def image_band_keys(hex_hash: str, max_bits: int) -> list[str]:
    bits = _bits(hex_hash)
    chunks = max_bits + 1
    bounds = [round(i * IMAGE_BITS / chunks) for i in range(chunks + 1)]
    scheme = image_scheme(max_bits)
    return [_key("i", scheme, i, bits[bounds[i] : bounds[i + 1]].encode()) for i in range(chunks)]


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@dataclass(frozen=True)
class TextPrint:
    grams: frozenset[str]
    keys: tuple[str, ...]


def text_print(text: str, *, threshold: float, min_chars: int) -> TextPrint | None:
    """A text's shingles and band keys, or None when it is too short to group safely."""
    normalised = normalise(text)
    if len(normalised) < min_chars:
        return None
    grams = shingles(normalised)
    return TextPrint(frozenset(grams), tuple(text_band_keys(grams, threshold)))
