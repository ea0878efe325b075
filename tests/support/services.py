"""Run services in-process or as real subprocesses (for kill -9 tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from services.router.service import RouterService
from shared.lifecycle import cancel_and_wait
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def running_router(settings: Settings) -> AsyncIterator[RouterService]:
    service = RouterService(settings)
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        await cancel_and_wait(task)
        await service.stop()


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, **settings.to_env(), "BILLSYNC_LOG_LEVEL": "WARNING", **extra}


def start_service(module: str, settings: Settings, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=service_env(settings, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
