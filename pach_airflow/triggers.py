"""Watching branches for new commits, in Airflow's triggerer.

:class:`CommitTrigger` is the event trigger behind each external input repo's ``AssetWatcher``
(``pach_airflow.compiler`` attaches it to the Asset ``pfs/<repo>@<branch>``). It runs in the triggerer's
event loop, so every store read happens in a thread (``asyncio.to_thread``), and each poll costs one small
read: the branch head. Only when the head has moved does it list the commits since its cursor (newest
first, stopping at the cursor) and yield one event per new commit, oldest first.

The cursor (the last commit id reported) lives in Airflow's asset state store, which the 3.3 triggerer
injects as ``self.asset_state_store``. It is saved *after* each event is handed over: a triggerer killed in
between reports that commit again after a restart (at least once, never lost). Repeats are harmless: a
commit event only wakes the DAG, and the DAG's plan task works out from the job records which input
commits have no job yet (``pach_airflow.compiler``), so nothing is processed twice. That also covers
Airflow folding several events into one run (airflow-notes §5).

On its first start (no cursor yet) the trigger reports the branch's current head only, as Pachyderm
starts a new pipeline's first job on the input heads, not on their whole history.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

CURSOR_KEY = "last_commit"
#: The most commits one head move reports; a bigger backlog is still drained, by the DAG's plan task.
MAX_COMMITS_PER_POLL = 1000


class CommitTrigger(BaseEventTrigger):
    """Yields ``{"repo", "branch", "commit"}`` for every new finished commit on ``repo@branch``.

    ``store``: the store URL; ``None`` reads ``[pach_airflow] store`` / ``$PACH_AIRFLOW_STORE`` in the
    triggerer when the trigger starts (never at DAG parse time). ``poll_interval``: seconds between two
    head reads; ``None`` reads ``[pach_airflow] poll_interval``.
    """

    def __init__(self, repo: str, branch: str = "master", store: str | None = None,
                 poll_interval: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.repo = repo
        self.branch = branch
        self.store = store
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "pach_airflow.triggers.CommitTrigger",
            {"repo": self.repo, "branch": self.branch, "store": self.store, "poll_interval": self.poll_interval},
        )

    # -- store reads (blocking: always called through asyncio.to_thread) -------------------------------
    def _open_store(self):
        from pach_airflow import airflow_config

        return airflow_config.open_store(self.store)

    def _head(self, store) -> str | None:
        from pach_airflow.errors import NotFound

        try:
            return store.inspect_branch(self.repo, self.branch).head
        except NotFound:  # the repo or branch does not exist yet: nothing to report
            return None

    def _commits_since(self, store, cursor: str | None, head: str) -> list[str]:
        """Finished commits of the branch after ``cursor``, oldest first (just ``head`` with no cursor)."""
        if cursor is None:
            return [head]
        newer: list[str] = []
        # Commit ids sort by creation time, so "after the cursor" is "id > cursor" even if the cursor
        # commit itself is gone (a branch moved back, a squash).
        for info in store.list_commits(self.repo, self.branch, limit=MAX_COMMITS_PER_POLL):
            if info.id <= cursor:
                break
            if info.finished:
                newer.append(info.id)
        return newer[::-1]

    # -- the triggerer's side -------------------------------------------------------------------------
    async def _poll_interval(self) -> float:
        if self.poll_interval is not None:
            return float(self.poll_interval)
        from pach_airflow import airflow_config

        return await asyncio.to_thread(airflow_config.poll_interval)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = self.asset_state_store
        cursor = (await state.aget(CURSOR_KEY)) if state is not None else None
        interval = await self._poll_interval()
        store = await asyncio.to_thread(self._open_store)
        log.info("watching %s@%s for new commits every %.1fs (cursor %s)", self.repo, self.branch, interval, cursor)
        while True:
            try:
                head = await asyncio.to_thread(self._head, store)
                new = [] if head is None or head == cursor else await asyncio.to_thread(
                    self._commits_since, store, cursor, head)
            except Exception as exc:  # noqa: BLE001 -- a store hiccup must not kill the watcher: log, poll again
                log.warning("reading %s@%s failed: %s; retrying in %.1fs", self.repo, self.branch, exc, interval)
                new = []
            for commit in new:
                yield TriggerEvent({"repo": self.repo, "branch": self.branch, "commit": commit})
                cursor = commit
                if state is not None:
                    await state.aset(CURSOR_KEY, cursor)
            await asyncio.sleep(interval)
