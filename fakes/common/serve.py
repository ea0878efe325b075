"""Serving a fake: `start_app` binds a fake's aiohttp app on host/port, `ServedApp` gives
a fake its ``start``/``stop``, and the command-line entry point every fake shares:
``--host``/``--port``/``--log-level``, serving the fake until SIGTERM or SIGINT, then
stopping it.

Each fake's ``cli.py`` keeps only its own options (`parser` then `parse`), how it builds
the fake from them, and what it prints once listening (the URL by default; stack.sh and
the tests read that line)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from aiohttp import web


async def start_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve `app` on ``host:port`` (0 picks a free port): the runner (to clean up on stop)
    and the base URL actually bound."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


class ServedApp:
    """A fake serving its aiohttp ``app``: ``start`` (0 picks a free port; returns the base
    URL, also kept in ``url``) and ``stop``. The fake sets ``app``, ``_runner = None`` and
    ``url = None`` in its ``__init__``."""

    app: web.Application
    _runner: web.AppRunner | None
    url: str | None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner, url = await start_app(self.app, host, port)
        self.url = url
        return url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class Servable(Protocol):
    async def start(self, host: str = ..., port: int = ...) -> str: ...

    async def stop(self) -> None: ...


F = TypeVar("F", bound=Servable)


def parser(prog: str, description: str | None, port: int) -> argparse.ArgumentParser:
    """A parser with the common ``--host`` and ``--port`` (the fake's fixed local port)."""
    result = argparse.ArgumentParser(prog=prog, description=description)
    result.add_argument("--host", default="127.0.0.1")
    result.add_argument("--port", type=int, default=port)
    return result


def parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Add the common ``--log-level`` after the fake's own options, then parse."""
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(list(argv))


def split(text: str) -> list[str]:
    """A comma-separated option as its non-empty, stripped parts."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _url(fake: Servable, args: argparse.Namespace, url: str) -> str:
    return url


async def serve(fake: F, host: str, port: int, announce: Callable[[str], str]) -> None:
    """Start the fake, print `announce(url)`, and stop it on SIGTERM/SIGINT."""
    url = await fake.start(host, port)
    print(announce(url), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def run(
    args: argparse.Namespace,
    build: Callable[[argparse.Namespace], F],
    announce: Callable[[F, argparse.Namespace, str], str] = _url,
) -> int:
    """Configure logging, build the fake from `args` and serve it until stopped."""
    logging.basicConfig(level=args.log_level.upper())
    fake = build(args)
    asyncio.run(serve(fake, args.host, args.port, lambda url: announce(fake, args, url)))
    return 0
