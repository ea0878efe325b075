"""One JSON object per line, for our own events and for every library's stdlib logging.

Our code logs through structlog (ids bound: bill, config, run, offset). Libraries log
through the standard `logging` module (SQLAlchemy, the Stripe SDK, aiokafka, aiohttp,
asyncio); their records go through structlog's `ProcessorFormatter`, so they come out
as the same JSON with a `logger` field instead of as SQL text, logfmt or tracebacks.

Levels: BILLSYNC_LOG_LEVEL sets ours (and the default); the libraries start at WARNING
(their INFO/DEBUG lines are chatty and, for SQL, carry parameters) and each can be
chosen with BILLSYNC_LOG_LEVELS, e.g. `aiokafka=INFO,sqlalchemy.engine=INFO`."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

LEVELS_ENV = "BILLSYNC_LOG_LEVELS"
# Quiet unless asked: one line per SQL statement, two logfmt lines per Stripe request,
# thousands per broker outage.
LIBRARY_LEVELS = {
    "sqlalchemy": logging.WARNING,
    "aiosqlite": logging.WARNING,
    "asyncpg": logging.WARNING,
    "stripe": logging.WARNING,
    "aiokafka": logging.WARNING,
    "kafka": logging.WARNING,
    "aiohttp": logging.WARNING,
    "urllib3": logging.WARNING,
}

_SECRET_KEYS = {"api_key", "secret", "password", "token", "access_token", "refresh_token"}


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    # Belt and braces: secrets should never be passed to a logger, but if one is, hide it.
    for key in list(event):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
    return event


class LevelsError(ValueError):
    pass


def parse_levels(text: str) -> dict[str, int]:
    """`aiokafka=INFO,sqlalchemy.engine=DEBUG` -> {logger: level}."""
    names = logging.getLevelNamesMapping()
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, level = part.partition("=")
        if not sep or not name.strip() or level.strip().upper() not in names:
            raise LevelsError(
                f"{LEVELS_ENV}: write logger=LEVEL pairs separated by commas, e.g. "
                "aiokafka=INFO,sqlalchemy.engine=INFO (levels: DEBUG, INFO, WARNING, ERROR)"
            )
        out[name.strip()] = names[level.strip().upper()]
    return out


def configure_logging(
    level: str = "INFO",
    service: str | None = None,
    stream: TextIO | None = None,
    levels: str | None = None,
) -> None:
    """Services log to stdout; command-line tools pass `stream=sys.stderr` so their own
    output (tables, summaries) stays alone on stdout. `levels` defaults to the
    BILLSYNC_LOG_LEVELS environment variable."""
    out = stream or sys.stdout
    ours = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    refused: str | None = None
    try:
        chosen = {**LIBRARY_LEVELS, **parse_levels(levels or os.environ.get(LEVELS_ENV, ""))}
    except LevelsError as exc:  # log it once configured rather than die unreadably
        chosen, refused = dict(LIBRARY_LEVELS), str(exc)
    common: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                *common,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(sort_keys=False),
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(ours)
    for name, library_level in chosen.items():
        logging.getLogger(name).setLevel(library_level)
    logging.captureWarnings(True)  # py.warnings: JSON too

    structlog.configure(
        processors=[
            *common,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(ours),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    if service:
        structlog.contextvars.bind_contextvars(service=service)
    sys.excepthook = _log_uncaught
    sys.unraisablehook = _log_unraisable
    if refused:
        get_logger(__name__).error("log_levels_ignored", reason=refused)


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """A crash is one JSON line too, not a bare traceback."""
    logging.getLogger("billsync").critical("uncaught_exception", exc_info=(kind, error, trace))


def _log_unraisable(unraisable: Any) -> None:
    """ "Exception ignored in ..." (a failing __del__, say): JSON too."""
    error = unraisable.exc_value
    logging.getLogger("billsync").error(
        "exception_ignored",
        exc_info=(type(error), error, unraisable.exc_traceback) if error else None,
        extra={"where": repr(unraisable.object)[:200]},
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
