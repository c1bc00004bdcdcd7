"""Keeping untrusted text from steering the model: control-token neutralisation and injection signals.

Two separate jobs. `neutralise` runs on every piece of text that goes into a prompt (content,
appeal statement, even policy text) so that it can never introduce a harmony control token: every
special token of the o200k_harmony tokenizer starts with `<|`, so breaking that pair with an
invisible WORD JOINER (U+2060) makes every such literal plain text, whatever follows it.
`detect_injection` looks for text that addresses the model rather than the reviewer ("ignore the
policy", role markers, "classify this as VALID") and names what it found; those signals are shown
to the human reviewer and never change the prompt or the verdict.
"""

from __future__ import annotations

import re

# Every special token of o200k_harmony (<|start|>, <|end|>, <|reserved_200013|>, ...) begins with
# this pair; tiktoken and the fast tokenizer only treat the exact literal as special.
CONTROL_PREFIX = "<|"
# WORD JOINER: invisible, not whitespace (so it doesn't change how the surrounding words split
# into tokens more than necessary) and never part of a special token.
NEUTRALISER = "\u2060"
_CONTROL_TOKEN_TEXT = re.compile(r"<\|([^|<>\s]{0,40})\|>")


def neutralise(text: str) -> tuple[str, tuple[str, ...]]:
    """Return `text` with every `<|` broken apart, and the control-token literals that were there."""
    if CONTROL_PREFIX not in text:
        return text, ()
    found = tuple(dict.fromkeys(f"<|{m.group(1)}|>" for m in _CONTROL_TOKEN_TEXT.finditer(text)))
    if not found:
        found = ("<|",)
    return text.replace(CONTROL_PREFIX, "<" + NEUTRALISER + "|"), found


# (signal name, pattern). Patterns are deliberately about addressing the model, not about topics:
# content that merely *discusses* violence must not light up here.
_SIGNALS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE | re.MULTILINE))
    for name, pattern in (
        (
            "asks the model to ignore its instructions",
            r"\b(ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}\b(all |any |the |your |previous |prior |above |earlier |preceding )*(instructions?|polic(y|ies)|rules?|guidelines?|prompts?|directions?|context)\b",
        ),
        (
            "tells the model how to label it",
            r"\b(label|classify|mark|rate|tag|categori[sz]e|flag|treat|output|return|respond with|answer)\b[^.\n]{0,40}\b(as |with |is |= ?)?[\"'`]?(safe|valid|allowed|benign|harmless|acceptable|not (a )?violation|non-?violating|violation: ?0|compliant|ok)\b",
        ),
        (
            "claims a new role for the model",
            r"\b(you are now|you're now|from now on,? you|pretend (to be|you are) (an?|the) (ai|model|moderator|classifier|assistant)|new instructions?|developer mode|jailbreak)\b",
        ),
        (
            "talks about the system prompt",
            r"\b(system|developer|hidden|initial|original)\s+(prompt|message|instructions?)\b",
        ),
        (
            "contains chat role or channel markers",
            r"(<\|[a-z_0-9]{1,30}\|>|^\s*(system|assistant|developer)\s*:|\[/?(INST|SYS)\]|<</?SYS>>|<\/?(system|assistant)>|\bassistant\s*(final|analysis|commentary)\b|\bchannel\s*[:=]\s*(final|analysis))",
        ),
        ("imitates the answer format", r"[\"']?violation[\"']?\s*:\s*[\"']?(0|1|false|true)\b"),
        (
            "addresses the moderator model",
            r"\b(dear|attention|note to|hey)\s+(ai|model|moderator|classifier|llm|assistant|bot)\b",
        ),
    )
)


def detect_injection(text: str) -> tuple[str, ...]:
    """Names of the injection signals found in `text`, in a fixed order, each once."""
    if not text:
        return ()
    signals = [name for name, pattern in _SIGNALS if pattern.search(text)]
    return tuple(signals)
