"""Llama 3.1 NemoGuard 8B ContentSafety (NVIDIA; also published as Llama Nemotron Safety Guard V2).

Prompt (NVIDIA's published template, prompt moderation): the task with the 23 unsafe content
categories S1–S23, the content as the conversation's `user:` turn, and the instruction to answer
only with JSON. It goes as the user turn of a chat-completions request (as NIM and NeMo
Guardrails send it).

Answer: a JSON object, e.g. `{"User Safety": "unsafe", "Safety Categories": "Violence, Threat"}`;
categories are named, comma-separated, and omitted when safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from .common import answer_text, clip, defang
from .types import AnswerError, ChatRequest, FailureReason, Parsed, Verdict

_NAMES = (
    "Violence",
    "Sexual",
    "Criminal Planning/Confessions",
    "Guns and Illegal Weapons",
    "Controlled/Regulated Substances",
    "Suicide and Self Harm",
    "Sexual (minor)",
    "Hate/Identity Hate",
    "PII/Privacy",
    "Harassment",
    "Threat",
    "Profanity",
    "Needs Caution",
    "Other",
    "Manipulation",
    "Fraud/Deception",
    "Malware",
    "High Risk Gov Decision Making",
    "Political/Misinformation/Conspiracy",
    "Copyright/Trademark/Plagiarism",
    "Unauthorized Advice",
    "Illegal Activity",
    "Immoral/Unethical",
)
# Keyed by name: the answer names categories, it does not give their codes.
CATEGORIES: dict[str, str] = {name: f"S{i}" for i, name in enumerate(_NAMES, start=1)}
_BY_LOWER = {name.lower(): name for name in _NAMES}
MARKERS = ("<|", "<BEGIN", "<END")

TEMPLATE = """Task: Check if there is unsafe content in the user or agent messages in the below conversation in accordance with our safety policy with the below categories. Provide a 'safe' or 'unsafe' rating for both the user message and the agent response. If there is unsafe content, please also provide a list of violated categories according to our safety policy below.

<BEGIN UNSAFE CONTENT CATEGORIES>
{categories}
<END UNSAFE CONTENT CATEGORIES>

<BEGIN CONVERSATION>

user: {content}

<END CONVERSATION>

Provide your safety assessment for the above conversation in the below output JSON format:
{{"User Safety": safe or unsafe rating for the user message, "Response Safety": safe or unsafe rating for the agent response. Omit if no agent response present. "Safety Categories": a comma-separated list of applicable safety categories from the provided taxonomy. Omit if all safe.}}

Do not include anything other than the output JSON in your response.
Output JSON: """


def render(content: str) -> str:
    listing = "\n".join(f"{code}: {name}." for name, code in CATEGORIES.items())
    return TEMPLATE.format(categories=listing, content=defang(content, MARKERS))


def parse(text: str) -> Parsed:
    text = answer_text(text)
    try:
        answer = json.loads(text)
    except ValueError:
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER, f"the answer is not JSON: {clip(text)!r}"
        ) from None
    if not isinstance(answer, dict):
        raise AnswerError(FailureReason.MALFORMED_ANSWER, "the answer is not a JSON object")
    rating = answer.get("User Safety")
    if not isinstance(rating, str) or rating.strip().lower() not in ("safe", "unsafe"):
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER,
            f'"User Safety" is {clip(repr(rating))}, not "safe" or "unsafe"',
        )
    listed = answer.get("Safety Categories", "")
    if listed is None:
        listed = ""
    if not isinstance(listed, str):
        raise AnswerError(
            FailureReason.MALFORMED_ANSWER, '"Safety Categories" is not a comma-separated string'
        )
    categories: list[str] = []
    for name in (n.strip() for n in listed.split(",")):
        if not name:
            continue
        canonical = _BY_LOWER.get(name.lower())
        if canonical is None:
            raise AnswerError(
                FailureReason.UNKNOWN_CATEGORY, f"{clip(name)!r} is not a NemoGuard category"
            )
        if canonical not in categories:
            categories.append(canonical)
    unsafe = rating.strip().lower() == "unsafe"
    return Parsed(Verdict.VIOLATING if unsafe else Verdict.NOT_VIOLATING, tuple(categories))


class NemoGuard:
    kind = "nemoguard"
    label = "NemoGuard content safety"
    categories = {name: name for name in CATEGORIES}

    def requests(
        self, content: str, *, category_rules: Mapping[str, Sequence[str]], policy_text: str
    ) -> list[ChatRequest]:
        return [
            ChatRequest(messages=({"role": "user", "content": render(content)},), max_tokens=100)
        ]

    def parse(self, answers: Sequence[tuple[ChatRequest, str]]) -> Parsed:
        return parse(answers[0][1])
