"""CoPE (Zentropi's COntent Policy Evaluator, CoPE-A-9B): a binary answer under a given policy.

Prompt (the model card's input format): INSTRUCTIONS ("Examine the given POLICY and determine if
the given CONTENT meets the criteria for ANY of the LABELS. Answer "1" if yes, and "0" if no."),
then the POLICY and the CONTENT sections, then the ANSWER heading. CoPE has no fixed taxonomy:
the policy text is configured per setting (a CoPE-style policy with its labels), or the case's
policy version is used as it is.

Answer: `1` (the content meets the policy's criteria) or `0`. Its one category for the
category → rule mapping is `violating`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .common import answer_text, clip, defang
from .types import AnswerError, ChatRequest, FailureReason, Parsed, Verdict

CATEGORY = "violating"
# Gemma's turn tokens, and the runs of "=" that underline the template's section headings.
MARKERS = ("<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "======")
TEMPLATE = """INSTRUCTIONS
============

Examine the given POLICY and determine if the given CONTENT meets the criteria for ANY of the LABELS. Answer "1" if yes, and "0" if no.


POLICY
======

{policy}


CONTENT
=======

{content}


ANSWER
======

"""


def render(content: str, policy: str) -> str:
    return TEMPLATE.format(policy=defang(policy, MARKERS), content=defang(content, MARKERS))


def parse(text: str) -> Parsed:
    text = answer_text(text)
    if text == "1":
        return Parsed(Verdict.VIOLATING, (CATEGORY,))
    if text == "0":
        return Parsed(Verdict.NOT_VIOLATING)
    raise AnswerError(
        FailureReason.MALFORMED_ANSWER, f'the answer is not "0" or "1": {clip(text)!r}'
    )


class Cope:
    kind = "cope"
    label = "CoPE"
    categories = {CATEGORY: CATEGORY}

    def requests(
        self, content: str, *, category_rules: Mapping[str, Sequence[str]], policy_text: str
    ) -> list[ChatRequest]:
        prompt = render(content, policy_text)
        return [ChatRequest(messages=({"role": "user", "content": prompt},), max_tokens=2)]

    def parse(self, answers: Sequence[tuple[ChatRequest, str]]) -> Parsed:
        return parse(answers[0][1])
