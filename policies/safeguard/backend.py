"""What a backend is given and what it gives back: rendered prompts in, raw generations out.

Backends know nothing about policies or verdicts; the engine renders prompts before and parses
generations after, so both backends share one prompt and one parser.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .types import FailureReason


@dataclass(frozen=True, slots=True)
class PromptRequest:
    system_text: str  # the policy message (neutralised, output instruction appended)
    user_text: str  # the case message (neutralised)
    prefix_text: str  # harmony text up to and including `<|start|>user<|message|>`
    prompt_text: str  # the full harmony prompt: prefix + user + `<|end|><|start|>assistant`
    reasoning_effort: str
    conversation_date: dt.date


@dataclass(frozen=True, slots=True)
class Generation:
    text: str = ""  # raw completion (harmony with markers, or a server's content)
    reasoning: str | None = None  # a server's separate reasoning field, if any
    finish_reason: str | None = None  # "stop" | "length" | None (unknown)
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    attempts: int = 1
    model_id: str = ""
    model_revision: str = ""
    error: FailureReason | None = None  # set when no generation came back (timeout, backend error)
    error_detail: str = ""
    prompt_tokens_computed: int = (
        0  # tokens actually run through the model (prefix reuse shows here)
    )


class Backend(Protocol):
    name: str

    def generate(
        self, requests: Sequence[PromptRequest], *, max_new_tokens: int
    ) -> list[Generation]:
        """One Generation per request, same order; problems come back as `error`, never raised."""
        ...
