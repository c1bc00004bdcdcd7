"""Side effects that follow a committed decision. Kept apart so they never block saving one."""

from __future__ import annotations


def decision_recorded(decision_id: int) -> None:
    """Called after a decision commits. Platform callbacks hook in here."""
