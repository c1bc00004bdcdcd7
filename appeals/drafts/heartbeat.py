"""The worker's heartbeat for the drafts it is running, so that slow is never mistaken for dead.

While the engine works (one call can take minutes on a long policy or a busy server), a daemon
thread refreshes `heartbeat_at` of every draft this run still owns, every
`DRAFT_HEARTBEAT_SECONDS`. The refresh is a conditional UPDATE on the run token: a draft that was
finished, or taken back by the recovery sweep, is no longer this run's and stops being refreshed.
The recovery sweep judges by the heartbeat, so a draft whose worker died (SIGKILL, lost machine)
goes quiet and is taken back after `DRAFT_STALL_SECONDS`, while a slow one keeps its run.

A thread rather than a callback from the engine: `policies.safeguard` knows nothing of the
database, and a single generate() call gives no place to beat from. The thread uses its own
database connection and closes it when it stops.

A run that is still beating `DRAFT_MAX_RUN_SECONDS` after it started is treated as wedged (a hung
GPU, a server that never answers and a client without a deadline): the thread stops beating, so
the sweep takes the draft back like any dead one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from appeals.models import Recommendation

log = logging.getLogger(__name__)


def beat(tokens: Mapping[int, uuid.UUID]) -> int:
    """Refresh the heartbeat of those drafts this run still owns; returns how many."""
    if not tokens:
        return 0
    return Recommendation.objects.filter(
        id__in=list(tokens),
        run_token__in=list(tokens.values()),
        status=Recommendation.Status.RUNNING,
    ).update(heartbeat_at=timezone.now())


class Heartbeat:
    """`with Heartbeat(taken):` around the engine's work keeps those drafts' heartbeats fresh.

    With `live=True` the mapping is read afresh on every beat (the drain in `feeder.py` adds the
    drafts it claims and removes those it finishes), and the thread runs until the block ends
    even while the mapping is empty.
    """

    def __init__(
        self,
        tokens: Mapping[int, uuid.UUID],
        *,
        live: bool = False,
        interval: float | None = None,
        max_run_seconds: float | None = None,
    ) -> None:
        self.live = live
        self.tokens = tokens if live else dict(tokens)
        self.interval = settings.DRAFT_HEARTBEAT_SECONDS if interval is None else interval
        self.max_run_seconds = (
            settings.DRAFT_MAX_RUN_SECONDS if max_run_seconds is None else max_run_seconds
        )
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="draft-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        if self.tokens or self.live:
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 30)

    def _run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stop.wait(self.interval):
                if time.monotonic() - started > self.max_run_seconds:
                    log.error(
                        "drafts %s still running after %d s: heartbeat stopped, the recovery "
                        "sweep will take them back",
                        sorted(dict(self.tokens)),
                        self.max_run_seconds,
                    )
                    return
                try:
                    close_old_connections()
                    # A copy: the drain's thread may change a live mapping meanwhile.
                    live = beat(dict(self.tokens))
                except Exception:
                    # The database may be briefly away; a missed beat is harmless, the next
                    # one (or, if they all fail, the sweep) settles it.
                    log.warning("draft heartbeat failed", exc_info=True)
                    continue
                self.beats += 1
                if not live and not self.live:
                    return  # all finished or taken back: nothing left to keep alive
        finally:
            connection.close()
