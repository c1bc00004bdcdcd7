"""Qwen3Guard-Gen (Qwen): safe, unsafe or controversial, with categories.

Prompt: the content as the user turn; the model's chat template renders the moderation task
around it (prompt moderation: the user message alone).

Answer (the model card's format and parser): a line `Safety: Safe|Unsafe|Controversial` and a
line `Categories: ...` naming one or more of its categories, or `None`. "Controversial" is the
model's own middle grade: an uncertain verdict here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .common import answer_text, clip, defang
from .types import AnswerError, ChatRequest, FailureReason, Parsed, Verdict

CATEGORIES: dict[str, str] = {
    name: name
    for name in (
        "Violent",
        "Non-violent Illegal Acts",
        "Sexual Content or Sexual Acts",
        "PII",
        "Suicide & Self-Harm",
        "Unethical Acts",
        "Politically Sensitive Topics",
        "Copyright Violation",
        "Jailbreak",
    )
}
VERDICTS = {
    "safe": Verdict.NOT_VIOLATING,
    "unsafe": Verdict.VIOLATING,
    "controversial": Verdict.UNCERTAIN,
}
MARKERS = ("<|", "<think>", "</think>")
_SAFETY = re.compile(r"^\s*Safety:\s*(.*?)\s*$", re.MULTILINE | re.IGNORECASE)
_CATEGORIES = re.compile(r"^\s*Categories:\s*(.*?)\s*$", re.MULTILINE | re.IGNORECASE)
_BY_LOWER = {name.lower(): name for name in CATEGORIES}


def parse(text: str) -> Parsed:
    text = answer_text(text)
    safety = _SAFETY.findall(text)
    if len(safety) != 1:
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER,
            "no 'Safety:' line" if not safety else "more than one 'Safety:' line",
        )
    verdict = VERDICTS.get(safety[0].lower())
    if verdict is None:
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER,
            f"'Safety: {clip(safety[0])}' is not Safe, Unsafe or Controversial",
        )
    lines = _CATEGORIES.findall(text)
    if len(lines) > 1:
        raise AnswerError(FailureReason.MALFORMED_ANSWER, "more than one 'Categories:' line")
    names = [n.strip() for n in lines[0].split(",")] if lines else []
    names = [n for n in names if n]
    if [n.lower() for n in names] == ["none"]:
        names = []
    categories: list[str] = []
    for name in names:
        canonical = _BY_LOWER.get(name.lower())
        if canonical is None:
            raise AnswerError(
                FailureReason.UNKNOWN_CATEGORY, f"{clip(name)!r} is not a Qwen3Guard category"
            )
        if canonical not in categories:
            categories.append(canonical)
    if verdict is not Verdict.NOT_VIOLATING and not lines:
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER, f"'Safety: {safety[0]}' without a 'Categories:' line"
        )
    return Parsed(verdict, tuple(categories))


class Qwen3Guard:
    kind = "qwen3guard"
    label = "Qwen3Guard"
    categories = CATEGORIES

    def requests(
        self, content: str, *, category_rules: Mapping[str, Sequence[str]], policy_text: str
    ) -> list[ChatRequest]:
        text = defang(content, MARKERS)
        return [ChatRequest(messages=({"role": "user", "content": text},), max_tokens=64)]

    def parse(self, answers: Sequence[tuple[ChatRequest, str]]) -> Parsed:
        return parse(answers[0][1])
