"""Keys for what the console keeps on its application and requests, and the replay jobs
started from the browser."""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from services.control.console.data import AccountBook
from services.control.console.session import Session, Sessions

if TYPE_CHECKING:
    from services.replay.runner import Replayer, ReplayStats

SESSION = web.RequestKey("billsync_console_session", Session)
SESSIONS = web.AppKey("billsync_console_sessions", Sessions)
BOOK = web.AppKey("billsync_console_accounts", AccountBook)


@dataclass
class ReplayJob:
    id: str
    replayer: Replayer
    started_by: str
    dt_started: datetime = field(default_factory=lambda: datetime.now(UTC))
    task: asyncio.Task[ReplayStats] | None = None
    error: str | None = None
    out: io.StringIO = field(default_factory=io.StringIO)

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()


class JobBoard:
    """Replays started from the console, newest first (the last 20 are kept)."""

    def __init__(self) -> None:
        self.jobs: dict[str, ReplayJob] = {}

    def start(self, replayer: Replayer, actor: str) -> ReplayJob:
        job = ReplayJob(f"job_{uuid.uuid4().hex[:12]}", replayer, actor)
        job.task = asyncio.create_task(self._run(job), name=f"console-replay:{job.id}")
        self.jobs = {job.id: job, **dict(list(self.jobs.items())[:19])}
        return job

    async def _run(self, job: ReplayJob) -> ReplayStats:
        try:
            return await job.replayer.run()
        except Exception as exc:
            job.error = str(exc) or type(exc).__name__
            raise

    async def stop(self) -> None:
        for job in self.jobs.values():
            if job.task is not None and not job.task.done():
                job.task.cancel()
                with contextlib.suppress(BaseException):
                    await job.task


JOBS = web.AppKey("billsync_console_jobs", JobBoard)
