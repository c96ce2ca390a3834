"""Run events for schedulers: one record per event, printed on stderr and kept in the run log.

A run reports ``start``, ``progress``, ``shard``, ``warning`` and ``done`` records (and the CLI an
``error`` record), each a flat JSON object with an ``event`` name, a UTC ``time`` and counts,
rates, shard names and one-line messages: never a data value (messages are maskpipe's own one-line
errors, which never hold one). :class:`EventLog` sends every record to the ``maskpipe`` logger and
keeps it for the run log (``.maskpipe/runlog/<time>-<pid>.jsonl``, written by the engine), so the
two hold the same records. How a record is printed is the handler's choice
(:func:`setup_logging`): ``--log-format json`` prints each record as one JSON line
(:class:`JsonFormatter`); the text format prints the records that have a text (progress lines,
warnings) as before and nothing for the others.

Example:
    >>> events = EventLog()
    >>> rec = events.emit("shard", shard="demo-000003.tar", samples=1000, bytes=2170880)
    >>> sorted(rec)
    ['bytes', 'event', 'samples', 'shard', 'time']
    >>> json.loads(JsonFormatter().format(_record(rec)))["shard"]
    'demo-000003.tar'
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LOGGER = logging.getLogger("maskpipe")
EVENT_ATTR = "maskpipe_event"
EVENTS = ("start", "progress", "shard", "warning", "done", "error")
LOG_FORMATS = ("text", "json")


def utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class EventLog:
    """A run's event records, in order, each also logged on the ``maskpipe`` logger.

    Args:
        logger: where records go (the CLI's handler prints them).
        bar: a progress bar may be drawn on a terminal (False when stderr carries JSON lines).
    """

    def __init__(self, logger: logging.Logger = LOGGER, bar: bool = True):
        self.logger = logger
        self.bar = bar
        self.records: list[dict] = []

    def emit(self, event: str, text: str = "", level: int = logging.INFO, **fields: Any) -> dict:
        """Record and log one event; ``text`` is what the text format prints (nothing when empty)."""
        rec = {"event": event, "time": utc_now(), **fields}
        self.records.append(rec)
        self.logger.log(level, "%s", text, extra={EVENT_ATTR: rec})
        return rec

    def keep(self, rec: dict) -> None:
        """Keep a record for the run log without logging it (the CLI prints errors itself)."""
        self.records.append(rec)


def error_record(message: str, exit_code: int, error: str) -> dict:
    """The ``error`` record: the one-line message (never a data value), the exit code and the
    error class."""
    return {"event": "error", "time": utc_now(), "exit_code": exit_code, "error": error, "message": message}


def _record(rec: dict) -> logging.LogRecord:
    r = logging.LogRecord(LOGGER.name, logging.INFO, __file__, 0, "%s", ("",), None)
    setattr(r, EVENT_ATTR, rec)
    return r


class JsonFormatter(logging.Formatter):
    """One JSON object a line: an event's record as it is, any other log record (a library's
    warning, say) as ``{"event": "log", "level": ..., "logger": ..., "message": ...}``."""

    def format(self, record: logging.LogRecord) -> str:
        rec = getattr(record, EVENT_ATTR, None)
        if rec is None:
            rec = {"event": "log", "time": utc_now(), "level": record.levelname.lower(), "logger": record.name,
                   "message": record.getMessage().split("\n", 1)[0]}
        return json.dumps(rec, ensure_ascii=False)


class _TextOnly(logging.Filter):
    """The text format prints events that have a text, and every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, EVENT_ATTR, None) is None or bool(record.getMessage())


def setup_logging(debug: bool = False, quiet: bool = False, log_format: str = "text") -> None:
    """Configure stderr for a command: the text format (``<time> maskpipe <LEVEL> <text>``) or
    ``json`` (every event of ``EVENTS``; ``--quiet`` keeps errors only)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        level = logging.ERROR if quiet else logging.INFO
        logging.captureWarnings(True)   # Python warnings too become JSON lines, not raw text
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s maskpipe %(levelname)s %(message)s"))
        handler.addFilter(_TextOnly())
        level = logging.ERROR if quiet else logging.WARNING
    if debug:
        level = logging.DEBUG
    root = logging.DEBUG if debug else (logging.ERROR if quiet else logging.WARNING)
    logging.basicConfig(level=root, handlers=[handler], force=True)
    LOGGER.setLevel(level)
