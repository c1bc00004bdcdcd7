"""The facts of an appeal that intake and review both need (which decision it contests, whether
another appeal is open against it, how the platform's account of it differs from ours).

Only models below this module; the rules that act on these facts are in appeals/review/appeal_links.py.
"""

from __future__ import annotations

from appeals.models import Action, Case, Decision


def open_appeal_on(item_id: int, *, exclude_id: int | None = None) -> Case | None:
    """The open appeal against the item's decision, if there is one."""
    appeals = Case.objects.filter(item_id=item_id, kind=Case.Kind.APPEAL, status=Case.Status.OPEN)
    if exclude_id is not None:
        appeals = appeals.exclude(id=exclude_id)
    return appeals.order_by("id").first()


def open_appeal_message(existing: Case) -> str:
    return (
        f"appeal {existing.external_id!r} (case {existing.id}) against this decision is still "
        "open; at most one appeal per decision may be open at a time"
    )


def _rules_text(rule_ids) -> str:
    return ", ".join(str(r) for r in rule_ids) if rule_ids else "no rules"


def original_mismatch(case: Case, decision: Decision | None) -> list[str]:
    """How the platform's stated original decision differs from the recorded one (sentences)."""
    if decision is None:
        return []
    problems = []
    if case.original_action and case.original_action != decision.action:
        problems.append(
            f"The platform says the original action was {Action(case.original_action).label.lower()}; "
            f"the decision recorded on case #{decision.case_id} was "
            f"{Action(decision.action).label.lower()}."
        )
    stated = sorted({str(r) for r in case.original_rule_ids or []})
    recorded = sorted({str(r) for r in decision.rule_ids or []})
    if stated != recorded:
        problems.append(
            f"The platform cites {_rules_text(stated)}; "
            f"case #{decision.case_id} recorded {_rules_text(recorded)}."
        )
    return problems


def appealed_decision_for(item_id: int) -> Decision | None:
    """The flag decision an appeal on this item contests (None until the flag is decided)."""
    return (
        Decision.objects.select_related("case")
        .filter(case__item_id=item_id, case__kind=Case.Kind.FLAG)
        .order_by("-decided_at", "-id")
        .first()
    )
