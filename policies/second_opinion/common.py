"""What the adapters share: keeping the content from writing the prompt's own markers, and the
first checks every answer gets."""

from __future__ import annotations

from .types import AnswerError, FailureReason

# WORD JOINER, as in the main engine (policies/safeguard/injection.py): invisible, and it breaks
# a marker's literal so the tokenizer reads plain text, not a control token or a section tag.
JOINER = "\u2060"


def defang(text: str, markers: tuple[str, ...]) -> str:
    """`text` with every literal of `markers` broken after its first character: content cannot
    close the conversation block, open a turn or start the answer section of a template."""
    for marker in markers:
        # Again until none is left: breaking one run of a repeated character ("=======") can
        # leave a whole marker in what follows the joiner. Each pass shortens every run.
        while marker in text:
            text = text.replace(marker, marker[0] + JOINER + marker[1:])
    return text


def answer_text(text: object) -> str:
    """The answer stripped, or AnswerError(EMPTY_ANSWER)."""
    if not isinstance(text, str) or not text.strip():
        raise AnswerError(FailureReason.EMPTY_ANSWER, "the model returned no text")
    return text.strip()


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
