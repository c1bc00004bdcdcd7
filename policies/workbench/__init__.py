"""The policy workbench: golden sets, evaluation runs of a policy version, metrics and the gate.

`models` (rows), `golden` (import/export), `metrics` (framework-free numbers), `runs` (creating,
executing, cancelling and recovering evaluation runs), `versions` (drafts, diffs, checks) and
`gate` (whether a version may be published). Audit events are written by the `appeals` layer
(`appeals/policy_workbench.py`), which calls these services: `policies` imports nothing above it.
"""
