"""Signals sent, inside their transaction, when a policy's settings or versions change.

`policies` imports nothing from the apps above it; `appeals` listens to these and records each
change in its audit log (`appeals.policy_audit`). `via` names the channel ("admin", "command",
"console", "api", "worker"); `actor` is the user, or None.
"""

from django.dispatch import Signal

# policy, created (bool), changes ({field: [old, new]}), actor, via
policy_settings_changed = Signal()
# version (with its rules written), actor, via
policy_version_added = Signal()
# version, actor, via
policy_version_published = Signal()
# version (a draft, its new text and rules written), removed_rule_ids (the PolicyRule rows the
# edit deleted), actor, via
policy_draft_edited = Signal()
