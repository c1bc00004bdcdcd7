"""Lint: no module writes or matches an audit event kind as a string literal.

In the spirit of Zulip's `tools/linter_lib/custom_check.py`: each rule carries a line it must
catch and a line it must let through, and the rule's own test checks both before the rule is
trusted on the code. Kinds are members of `AuditEvent.Kind`; a misspelt literal would record an
event nobody ever queries (or query one that never exists), and nothing else would notice.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from appeals.models import AuditEvent

ROOT = Path(__file__).resolve().parent.parent
# The application's code. Migrations are history; the engine knows nothing of audit events;
# models.py is where the enum itself spells the values.
SCANNED = ("appeals", "reviewer", "policies")
SKIPPED_PARTS = {"migrations", "safeguard"}
SKIPPED_FILES = {ROOT / "appeals" / "models.py"}
KINDS = frozenset(AuditEvent.Kind.values)


def _kind_literal(node: ast.AST | None) -> str | None:
    """The kind a literal spells: "decided", or one inside ("decided", …) / ["decided", …]."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in KINDS:
        return node.value
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            found = _kind_literal(element)
            if found:
                return found
    return None


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_kindish(name: str) -> bool:
    name = name.lower()
    return name == "kind" or name.startswith("kind__") or name.endswith(("_kind", "_events"))


def _recorded_with_literal(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in ("record_event", "PendingEvent"):
            args = [*node.args[:1], *(k.value for k in node.keywords if k.arg == "kind")]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    yield node.lineno, f"{_name(node.func)}({arg.value!r}, …)"


def _kind_keyword_literal(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                found = keyword.arg and _is_kindish(keyword.arg) and _kind_literal(keyword.value)
                if found:
                    yield node.lineno, f"{keyword.arg}={found!r}"


def _kind_assigned_or_compared(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = _kind_literal(node.value)
            if found and any(_is_kindish(_name(t)) for t in targets):
                yield node.lineno, f"{_name(targets[0])} = {found!r}"
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            found = next((f for f in map(_kind_literal, sides) if f), None)
            if found and any(_is_kindish(_name(side)) for side in sides):
                yield node.lineno, f"comparison with {found!r}"


@dataclass(frozen=True)
class Rule:
    description: str
    check: Callable[[ast.AST], Iterator[tuple[int, str]]]
    bad: str
    good: str


RULES = (
    Rule(
        "record an audit event with a member of AuditEvent.Kind, not a string",
        _recorded_with_literal,
        bad='record_event("decided", case=case, source=source)',
        good="record_event(AuditEvent.Kind.DECIDED, case=case, source=source)",
    ),
    Rule(
        "filter audit events by a member of AuditEvent.Kind, not a string",
        _kind_keyword_literal,
        bad='case.events.filter(kind="blind_call", actor=reviewer)',
        good="case.events.filter(kind=AuditEvent.Kind.BLIND_CALL, actor=reviewer)",
    ),
    Rule(
        "name audit event kinds through AuditEvent.Kind in assignments and comparisons",
        _kind_assigned_or_compared,
        bad='CALLBACK_EVENTS = ("callback_attempted", "callback_delivered")',
        good="CALLBACK_EVENTS = (Kind.CALLBACK_ATTEMPTED, Kind.CALLBACK_DELIVERED)",
    ),
)


def _python_files() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if SKIPPED_PARTS & set(path.relative_to(ROOT).parts) or path in SKIPPED_FILES:
                continue
            files.append(path)
    return files


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.check.__name__)
def test_each_rule_catches_its_bad_line_and_passes_its_good_one(rule):
    assert list(rule.check(ast.parse(rule.bad))), f"missed: {rule.bad}"
    assert not list(rule.check(ast.parse(rule.good))), f"flagged: {rule.good}"


def test_more_shapes_the_rules_catch():
    bad_lines = [
        'kind = "draft_failed"',
        'if kind == "callback_attempted": pass',
        'AuditEvent.objects.filter(kind__in=["received", "decided"])',
        'PendingEvent("claimed", case, actor=reviewer)',
    ]
    for line in bad_lines:
        assert any(list(rule.check(ast.parse(line))) for rule in RULES), line
    # Strings that merely look like kinds elsewhere are fine: a case status, a delivery status.
    good_lines = [
        'STATUS_CHOICES = [("open", "Open"), ("decided", "Decided")]',
        'return DeliveryOutcome("skipped", attempts)',
        'Case.objects.filter(kind="appeal")',
    ]
    for line in good_lines:
        assert not any(list(rule.check(ast.parse(line))) for rule in RULES), line


def test_no_module_writes_an_audit_event_kind_as_a_string_literal():
    files = _python_files()
    assert len(files) > 30, "the scan found too few files: is ROOT right?"
    problems = []
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for rule in RULES:
            for line, what in rule.check(tree):
                problems.append(f"{path.relative_to(ROOT)}:{line}: {what}: {rule.description}")
    assert problems == []
