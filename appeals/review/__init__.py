"""Review: what a person does with a case. Roles and permissions, the queue and its leases
(`queueing.py`), and the decision (`decisions.py`), which applies the rules of `appeals.outcomes`."""
