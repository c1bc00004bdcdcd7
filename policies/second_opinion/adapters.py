"""The adapters, by the kind name settings use. Each owns its prompt format and its parser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from .cope import Cope
from .llama_guard import LlamaGuard3, LlamaGuard4
from .nemoguard import NemoGuard
from .qwen3guard import Qwen3Guard
from .shieldgemma import ShieldGemma
from .types import ChatRequest, Parsed


class Adapter(Protocol):
    kind: str
    label: str
    categories: Mapping[str, str]  # the category names its answers use → a short label

    def requests(
        self, content: str, *, category_rules: Mapping[str, Sequence[str]], policy_text: str
    ) -> list[ChatRequest]: ...

    def parse(self, answers: Sequence[tuple[ChatRequest, str]]) -> Parsed:
        """Read the answers (one per request, same order); AnswerError when they cannot be."""
        ...


ADAPTERS: dict[str, Adapter] = {
    adapter.kind: adapter
    for adapter in (LlamaGuard3(), LlamaGuard4(), ShieldGemma(), Qwen3Guard(), NemoGuard(), Cope())
}


def categories_of(kind: str) -> tuple[str, ...]:
    """The category names an adapter's answers use (what a mapping may name)."""
    return tuple(ADAPTERS[kind].categories)
