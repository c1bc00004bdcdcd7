"""The language a text is written in, as an ISO 639-1 code: framework-free, usable anywhere.

Uses lingua (`lingua-language-detector`), accurate on short texts such as posts and comments.
Its high-accuracy models take about half a second per language to load, so the detector knows
the languages in `LANGUAGE_DETECTION_LANGUAGES` (ISO 639-1 codes, comma-separated; default the
fourteen below), built once per process on first use. A text too short or too close between
two languages to call gets None rather than a guess.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

DEFAULT_LANGUAGES = "en,de,fr,es,pt,it,nl,pl,ru,tr,ar,zh,ja,hi"
MIN_LETTERS = 3  # fewer letters than this is no evidence of any language
MIN_RELATIVE_DISTANCE = 0.1  # lingua's margin between the best and the next language

_detector = None
_lock = threading.Lock()


def configured_languages() -> list[str]:
    raw = os.environ.get("LANGUAGE_DETECTION_LANGUAGES") or DEFAULT_LANGUAGES
    return [code.strip().lower() for code in raw.split(",") if code.strip()]


def _get_detector():
    global _detector
    with _lock:
        if _detector is None:
            from lingua import IsoCode639_1, LanguageDetectorBuilder

            codes = []
            for code in configured_languages():
                try:
                    codes.append(getattr(IsoCode639_1, code.upper()))
                except AttributeError:
                    raise ValueError(
                        f"LANGUAGE_DETECTION_LANGUAGES: {code!r} is not an ISO 639-1 code lingua knows"
                    ) from None
            if len(codes) < 2:
                raise ValueError("LANGUAGE_DETECTION_LANGUAGES must name at least two languages")
            _detector = (
                LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
                .with_minimum_relative_distance(MIN_RELATIVE_DISTANCE)
                .build()
            )
        return _detector


def _code(language) -> str | None:
    return None if language is None else language.iso_code_639_1.name.lower()


def _enough_letters(text: str) -> bool:
    return bool(text) and sum(ch.isalpha() for ch in text) >= MIN_LETTERS


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of `text` ("en", "de", …), or None when it can't be told."""
    if not _enough_letters(text):
        return None
    return _code(_get_detector().detect_language_of(text))


def detect_languages(texts: Sequence[str]) -> list[str | None]:
    """`detect_language` for many texts at once (lingua spreads them over its threads)."""
    todo = [i for i, text in enumerate(texts) if _enough_letters(text)]
    found: list[str | None] = [None] * len(texts)
    if todo:
        languages = _get_detector().detect_languages_in_parallel_of([texts[i] for i in todo])
        for i, language in zip(todo, languages, strict=True):
            found[i] = _code(language)
    return found
