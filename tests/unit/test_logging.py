"""Every line is one JSON object: our events and the libraries' stdlib records alike, at
the levels the operator chose."""

from __future__ import annotations

import io
import json
import logging
import sys
import warnings
from collections.abc import Iterator

import pytest
import structlog

from shared.logging import configure_logging, get_logger, parse_levels


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = sys.excepthook, sys.unraisablehook
    yield
    sys.excepthook, sys.unraisablehook = hooks
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_library_records_are_json_at_chosen_levels() -> None:
    out = io.StringIO()
    configure_logging("INFO", service="t", stream=out, levels="aiokafka=DEBUG")
    get_logger("ours").info("bill_routed", bill_id="b-1", api_key="sk_live_x")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")  # WARNING by default
    logging.getLogger("stripe").info("message='Request to Stripe api' method=post")
    logging.getLogger("aiokafka.conn").debug("connecting to 127.0.0.1:9092")
    logging.getLogger("aiohttp.server").warning("bad request line")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)

    found = lines(out)  # raises if any line is not JSON
    ours = next(e for e in found if e["event"] == "bill_routed")
    assert (ours["level"], ours["service"], ours["api_key"]) == ("info", "t", "***")
    loggers = {e.get("logger") for e in found}
    assert "sqlalchemy.engine.Engine" not in loggers and "stripe" not in loggers
    assert {"aiokafka.conn", "aiohttp.server", "asyncio", "py.warnings"} <= loggers
    crash = next(e for e in found if e.get("logger") == "asyncio")
    assert "RuntimeError: boom" in str(crash["exception"]) and crash["level"] == "error"


@pytest.mark.usefixtures("restore_logging")
def test_an_uncaught_exception_is_one_json_line() -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out)
    try:
        raise ValueError("bad")
    except ValueError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    (crash,) = lines(out)
    assert crash["event"] == "uncaught_exception" and crash["level"] == "critical"
    assert "ValueError: bad" in str(crash["exception"])


@pytest.mark.usefixtures("restore_logging")
def test_bad_level_settings_are_reported_not_fatal() -> None:
    out = io.StringIO()
    configure_logging("INFO", stream=out, levels="aiokafka=LOUD")
    assert lines(out)[0]["event"] == "log_levels_ignored"
    assert parse_levels(" aiokafka=info , sqlalchemy.engine=DEBUG") == {
        "aiokafka": logging.INFO,
        "sqlalchemy.engine": logging.DEBUG,
    }
