"""Llama Guard 3 and 4 (Meta): the MLCommons hazard taxonomy, S1–S14.

Prompt: the content as the conversation's one user turn. The model's chat template (served by
vLLM or `transformers serve`) renders the task around it: the fourteen categories, the
conversation, and the instruction "First line must read 'safe' or 'unsafe'. If unsafe, a second
line must include a comma-separated list of violated categories." Llama Guard 4 takes message
content as a list of typed parts (it is multimodal), Llama Guard 3 as a string.

Answer: `safe`, or `unsafe` and on the next line the codes, e.g. `unsafe\\nS1,S10`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .common import answer_text, clip, defang
from .types import AnswerError, ChatRequest, FailureReason, Parsed, Verdict

CATEGORIES: dict[str, str] = {
    "S1": "Violent Crimes",
    "S2": "Non-Violent Crimes",
    "S3": "Sex-Related Crimes",
    "S4": "Child Sexual Exploitation",
    "S5": "Defamation",
    "S6": "Specialized Advice",
    "S7": "Privacy",
    "S8": "Intellectual Property",
    "S9": "Indiscriminate Weapons",
    "S10": "Hate",
    "S11": "Suicide & Self-Harm",
    "S12": "Sexual Content",
    "S13": "Elections",
    "S14": "Code Interpreter Abuse",
}
# Llama 3's special tokens and the template's section tags.
MARKERS = ("<|", "<BEGIN", "<END")
_CODE = re.compile(r"S\d{1,3}")


def parse(text: str) -> Parsed:
    """Read a Llama Guard answer; AnswerError names what is wrong with one that is not."""
    lines = [line.strip() for line in answer_text(text).splitlines() if line.strip()]
    head = lines[0].lower()
    if head == "safe":
        if len(lines) > 1:
            raise AnswerError(
                FailureReason.MALFORMED_ANSWER, f"'safe' followed by more: {clip(lines[1])!r}"
            )
        return Parsed(Verdict.NOT_VIOLATING)
    if head != "unsafe":
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER,
            f"the first line is neither 'safe' nor 'unsafe': {clip(lines[0])!r}",
        )
    if len(lines) != 2:
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER,
            "'unsafe' needs exactly one more line, the violated categories",
        )
    codes: list[str] = []
    for token in (t.strip() for t in lines[1].split(",")):
        code = token.upper()
        if not _CODE.fullmatch(code):
            raise AnswerError(
                FailureReason.MALFORMED_ANSWER, f"{clip(token)!r} is not a category code (S1–S14)"
            )
        if code not in CATEGORIES:
            raise AnswerError(
                FailureReason.UNKNOWN_CATEGORY, f"{code} is not one of Llama Guard's S1–S14"
            )
        if code not in codes:
            codes.append(code)
    return Parsed(Verdict.VIOLATING, tuple(codes))


class LlamaGuard3:
    kind = "llama_guard_3"
    label = "Llama Guard 3"
    categories = CATEGORIES
    parts = False  # message content as a string

    def requests(
        self, content: str, *, category_rules: Mapping[str, Sequence[str]], policy_text: str
    ) -> list[ChatRequest]:
        text = defang(content, MARKERS)
        body = [{"type": "text", "text": text}] if self.parts else text
        return [ChatRequest(messages=({"role": "user", "content": body},), max_tokens=20)]

    def parse(self, answers: Sequence[tuple[ChatRequest, str]]) -> Parsed:
        return parse(answers[0][1])


class LlamaGuard4(LlamaGuard3):
    kind = "llama_guard_4"
    label = "Llama Guard 4"
    parts = True
