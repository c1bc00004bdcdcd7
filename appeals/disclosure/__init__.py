"""Disclosure: telling others what was decided. The user's notice (`notices.py`), the signed
callback to the platform (`callbacks.py`, `tasks.py`), the auditor's exports (`exports.py`) and
the DSA statements of reasons (`dsa.py`)."""
