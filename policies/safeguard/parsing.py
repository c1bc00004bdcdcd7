"""Reading what the model answered: split reasoning from the final answer, parse it, classify failures.

Both backends end here. Output arrives in several shapes and all are accepted:
- raw harmony from the in-process backend (`<|channel|>analysis<|message|>…<|end|><|start|>assistant
  <|channel|>final<|message|>{…}<|return|>`, decoded with special tokens kept);
- a server's answer with the reasoning in its own field (vLLM `reasoning` / `reasoning_content`);
- `transformers serve`'s flattened text with the special tokens stripped
  (`analysis…assistantfinal{…}`);
- a bare final answer, with or without code fences or trailing text.

The final answer is OpenAI's recommended JSON (`violation`, `policy_category`, `rule_ids`,
`confidence`, `rationale`) or the policy's own labels (`VALID`/`INVALID`, tier codes such as `GV1`
where a tier numbered 0 means allowed, `D-SP2`). Every input yields a `ParsedOutput`: READY with a
verdict, or FAILED with exactly one `FailureReason`. `parse_output` never raises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .rules import RULE_ID_RE, is_allowed_rule, resolve_rule_ids, tier_number
from .types import DraftStatus, FailureReason, PolicySpec

_STOP_MARKERS = ("<|return|>", "<|end|>", "<|call|>", "<|endoftext|>")
_CHANNEL_RE = re.compile(r"<\|channel\|>\s*([A-Za-z_]+)")
_FLAT_RE = re.compile(
    r"^\s*(?:assistant)?\s*analysis(?P<analysis>.*?)assistant\s*final(?P<final>.*)$", re.DOTALL
)
_FLAT_ANALYSIS_ONLY_RE = re.compile(r"^\s*(?:assistant)?\s*analysis(?P<analysis>.*)$", re.DOTALL)
_FLAT_FINAL_ONLY_RE = re.compile(r"^\s*(?:assistant)?\s*final(?P<final>\s*[{\[`].*)$", re.DOTALL)
_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_VERDICT_WORD_RE = re.compile(r"\b(INVALID|VALID)\b")
_CONFIDENCE_WORDS = {
    "low": "low",
    "medium": "medium",
    "med": "medium",
    "moderate": "medium",
    "high": "high",
}
_MAX_RAW = 200_000  # longer outputs are a runaway loop; parse a bounded prefix


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    status: DraftStatus
    failure_reason: FailureReason | None = None
    failure_detail: str = ""
    violation: bool | None = None
    policy_category: str | None = None
    rule_ids: tuple[str, ...] = ()
    unknown_rule_ids: tuple[str, ...] = ()
    confidence: str | None = None
    rationale: str = ""
    reasoning: str = ""
    final_text: str = ""
    answer_format: str = ""  # "json" | "label" | "" (failed)
    notes: tuple[str, ...] = field(
        default=()
    )  # accepted oddities, e.g. answer on commentary channel


@dataclass(frozen=True, slots=True)
class _Split:
    reasoning: str
    final: str | None  # None: no final answer at all
    final_complete: bool  # the final message ended on a stop marker (or the server said "stop")
    reasoning_complete: bool
    notes: tuple[str, ...] = ()


def _split_harmony(text: str) -> _Split:
    """Split decoded harmony (special tokens kept) into analysis and final channels."""
    # The prompt ends with `<|start|>assistant`, so the completion starts with the header of the
    # first assistant message; later messages are introduced by `<|start|>assistant`.
    parts = re.split(r"<\|start\|>", text)
    analysis: list[str] = []
    finals: list[tuple[str, bool]] = []
    commentary: list[tuple[str, bool]] = []
    reasoning_complete = True
    for part in parts:
        if not part.strip():
            continue
        header, sep, body = part.partition("<|message|>")
        if not sep:
            continue  # a header cut off before its body: nothing to read
        channel_match = _CHANNEL_RE.search(header)
        channel = channel_match.group(1).lower() if channel_match else "final"
        end = len(body)
        complete = False
        for marker in _STOP_MARKERS:
            index = body.find(marker)
            if index != -1 and index < end:
                end, complete = index, True
        content = body[:end]
        if channel == "analysis":
            analysis.append(content)
            reasoning_complete = reasoning_complete and complete
        elif channel == "final":
            finals.append((content, complete))
        else:
            commentary.append((content, complete))
    notes: tuple[str, ...] = ()
    if not finals and commentary:
        # Known upstream failure: the answer lands on the commentary channel. Accept it, say so.
        finals, notes = commentary, ("answer was on the commentary channel",)
    final, final_complete = finals[-1] if finals else (None, False)
    return _Split(
        "\n".join(a.strip() for a in analysis), final, final_complete, reasoning_complete, notes
    )


def _split(text: str, reasoning: str | None, finish_reason: str | None) -> _Split:
    stopped = finish_reason in (None, "stop", "eos", "end_turn")
    truncated = finish_reason == "length"
    if "<|channel|>" in text or "<|message|>" in text:
        split = _split_harmony(text)
        if reasoning:
            split = _Split(
                reasoning.strip() + ("\n" + split.reasoning if split.reasoning else ""),
                split.final,
                split.final_complete,
                split.reasoning_complete,
                split.notes,
            )
        if truncated:
            split = _Split(
                split.reasoning, split.final, False, split.final is not None, split.notes
            )
        return split
    if reasoning is not None and reasoning.strip():
        final = text if text.strip() else None
        return _Split(reasoning.strip(), final, not truncated, final is not None or not truncated)
    flat = _FLAT_RE.match(text)
    if flat:
        return _Split(flat.group("analysis").strip(), flat.group("final"), not truncated, True)
    final_only = _FLAT_FINAL_ONLY_RE.match(text)
    if final_only:
        return _Split("", final_only.group("final"), not truncated, True)
    analysis_only = _FLAT_ANALYSIS_ONLY_RE.match(text)
    if analysis_only and text.lstrip().startswith("analysis") and not _looks_like_answer(text):
        return _Split(analysis_only.group("analysis").strip(), None, False, not truncated)
    return _Split("", text if text.strip() else None, stopped and not truncated, True)


def _looks_like_answer(text: str) -> bool:
    return "{" in text and '"violation"' in text


def _json_candidates(text: str) -> list[str]:
    """Balanced `{...}` substrings, fenced blocks first, in order of appearance."""
    candidates: list[str] = [m.group(1) for m in _FENCE_RE.finditer(text)]
    depth = 0
    start = -1
    in_string = False
    escaped = False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"' and depth > 0:
            in_string = True
        elif char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
            if depth == 0 and start >= 0:
                candidates.append(text[start : i + 1])
                if len(candidates) > 20:
                    break
    return candidates


def _load_json_object(text: str) -> dict[str, Any] | None:
    for candidate in _json_candidates(text):
        candidate = candidate.strip()
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _as_violation(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().strip("`'\"").lower()
        if word in {"1", "true", "yes", "invalid", "violation", "violating"}:
            return True
        if word in {"0", "false", "no", "valid", "none", "safe", "non-violating"}:
            return False
    return None


def _as_confidence(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        score = float(value)
        if score > 1:
            score /= 100
        if not 0 <= score <= 1:
            return None
        return "low" if score < 0.5 else "medium" if score < 0.8 else "high"
    if isinstance(value, str):
        return _CONFIDENCE_WORDS.get(value.strip().lower())
    return None


def _as_id_list(value: Any) -> list[str]:
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, str):
        return [
            m.group(1)
            for m in re.finditer(r"\b([A-Za-z]{1,5}\d{1,3}(?:\.[A-Za-z0-9]{1,3})?)\b", value)
        ]
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            if isinstance(item, str | int | float) and not isinstance(item, bool):
                out.extend(_as_id_list(str(item)) or ([str(item)] if str(item).strip() else []))
        return out
    return []


def _category(value: Any) -> str | None:
    if (
        isinstance(value, str)
        and value.strip()
        and value.strip().lower() not in {"null", "none", "n/a"}
    ):
        return value.strip()[:100]
    return None


def _from_json(obj: dict[str, Any], policy: PolicySpec) -> dict[str, Any] | None:
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    label = next(
        (lowered[k] for k in ("label", "classification", "verdict", "decision") if k in lowered),
        None,
    )
    cited = _as_id_list(lowered.get("rule_ids", lowered.get("rules")))
    category = _category(lowered.get("policy_category", lowered.get("category")))
    violation = _as_violation(lowered["violation"]) if "violation" in lowered else None
    if violation is None and isinstance(label, str):
        label_result = _from_label(label, policy)
        if label_result is not None:
            violation = label_result["violation"]
            cited = cited or list(label_result["cited"])
    if category and category not in cited and _as_id_list(category) == [category]:
        cited_with_category = [*cited, category] if violation else cited
    else:
        cited_with_category = cited
    if violation is None:
        violation = _violation_from_rules(cited_with_category or ([category] if category else []))
    if violation is None:
        return None
    rationale = lowered.get("rationale", lowered.get("reason", lowered.get("explanation", "")))
    return {
        "violation": violation,
        "cited": cited_with_category,
        "category": category if violation else None,
        "confidence": _as_confidence(lowered.get("confidence")),
        "rationale": rationale if isinstance(rationale, str) else json.dumps(rationale)[:2000],
    }


def _violation_from_rules(cited: list[str]) -> bool | None:
    tiers = [tier_number(rule_id) for rule_id in cited]
    tiers = [t for t in tiers if t is not None]
    if not tiers:
        return None
    return any(t > 0 for t in tiers)


def _from_label(text: str, policy: PolicySpec) -> dict[str, Any] | None:
    """A policy-label answer: `INVALID`, `GV1`, `INVALID (GV1.a)`, `D-SP2, R-SP0`..."""
    head = text.strip()[:4000]
    cited = [m.group(1) for m in RULE_ID_RE.finditer(head)]
    if policy.rules:
        known, _ = resolve_rule_ids(cited, policy.rules)
        # Prefer ids the policy defines; a label answer's stray codes (dates, "H2O") are noise.
        cited = list(known) or cited
    words = {m.group(1) for m in _VERDICT_WORD_RE.finditer(head)}
    if "INVALID" in words:
        violation: bool | None = True
    elif "VALID" in words:
        violation = False
    else:
        violation = _violation_from_rules(cited)
    if violation is None:
        return None
    return {"violation": violation, "cited": cited}


def _failed(reason: FailureReason, detail: str, split: _Split | None = None) -> ParsedOutput:
    return ParsedOutput(
        status=DraftStatus.FAILED,
        failure_reason=reason,
        failure_detail=detail,
        reasoning=split.reasoning if split else "",
        final_text=(split.final or "") if split else "",
        notes=split.notes if split else (),
    )


def parse_output(
    text: str,
    *,
    policy: PolicySpec,
    reasoning: str | None = None,
    finish_reason: str | None = None,
) -> ParsedOutput:
    """Parse one model output. Never raises; every failure is a FAILED result with its reason."""
    try:
        return _parse(text, policy=policy, reasoning=reasoning, finish_reason=finish_reason)
    except Exception as exc:  # a parser bug must not lose the draft; report it as unparseable
        return _failed(FailureReason.UNPARSEABLE, f"parser error: {type(exc).__name__}: {exc}")


def _parse(
    text: str, *, policy: PolicySpec, reasoning: str | None, finish_reason: str | None
) -> ParsedOutput:
    text = (text if isinstance(text, str) else "")[:_MAX_RAW]
    reasoning = reasoning if isinstance(reasoning, str) else None
    if not text.strip() and not (reasoning and reasoning.strip()):
        if finish_reason == "length":
            return _failed(
                FailureReason.REASONING_EXHAUSTED,
                "the output-token limit was reached before any answer",
            )
        return _failed(FailureReason.EMPTY, "the model returned no text")
    split = _split(text, reasoning, finish_reason)
    if split.final is None or not split.final.strip():
        if not split.reasoning_complete or finish_reason == "length":
            return _failed(
                FailureReason.REASONING_EXHAUSTED,
                "the reasoning used the whole output-token budget; raise max_new_tokens or lower the effort",
                split,
            )
        return _failed(
            FailureReason.NO_FINAL_ANSWER, "reasoning came back but no final answer", split
        )
    final = split.final.strip()
    obj = _load_json_object(final)
    result = _from_json(obj, policy) if obj is not None else None
    answer_format = "json"
    unfenced = _FENCE_RE.sub(lambda m: m.group(1), final).strip()
    json_like = unfenced.startswith(("{", "[")) or '"violation"' in unfenced
    if result is None and not json_like:
        # Only a non-JSON answer is read as labels: the codes inside a cut-off JSON object
        # ('{"violation": 1, "rule_ids": ["FX1') are not an answer.
        result = _from_label(unfenced, policy)
        answer_format = "label"
    if result is None:
        if not split.final_complete:
            return _failed(
                FailureReason.TRUNCATED,
                "the output-token limit was reached inside the final answer",
                split,
            )
        return _failed(
            FailureReason.UNPARSEABLE,
            "the final answer is neither the JSON shape nor a policy label",
            split,
        )
    known, unknown = resolve_rule_ids(result["cited"], policy.rules)
    category = result.get("category")
    if result["violation"] and category is None:
        category = next((r for r in known if not is_allowed_rule(r)), None)
    elif category is not None:
        resolved, _ = resolve_rule_ids([category], policy.rules)
        category = resolved[0] if resolved else category
    return ParsedOutput(
        status=DraftStatus.READY,
        violation=bool(result["violation"]),
        policy_category=category if result["violation"] else None,
        rule_ids=known,
        unknown_rule_ids=unknown,
        confidence=result.get("confidence"),
        rationale=str(result.get("rationale") or "").strip(),
        reasoning=split.reasoning,
        final_text=final,
        answer_format=answer_format,
        notes=split.notes,
    )
