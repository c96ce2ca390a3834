"""Event records (maskpipe/logs.py) and the progress watcher that emits them, without Ray: the
JSON and text formats, one ``shard`` record per published shard, no bar among JSON lines."""
from __future__ import annotations

import json
import logging

import pytest

from maskpipe.logs import LOGGER, EventLog, JsonFormatter, error_record, setup_logging
from maskpipe.runner.progress import Progress
from maskpipe.sink import SinkSpec


class _Store:
    """Records under .maskpipe/shards, as the sinks publish them."""

    s3 = False

    def __init__(self):
        self.records: dict[str, dict] = {}

    def list(self, prefix: str) -> list[str]:
        return sorted(self.records)

    def read_json(self, rel: str):
        return self.records.get(rel.rsplit("/", 1)[1])


class _Err:
    def __init__(self, capsys):
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(capsys):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, LOGGER.level)
    yield _Err(capsys)
    root.handlers[:] = saved[0]       # leave no handler on the captured stream
    root.setLevel(saved[1])
    LOGGER.setLevel(saved[2])


def test_json_format_prints_every_record_as_one_line_and_other_logs_as_log_records(stderr):
    setup_logging(log_format="json")
    events = EventLog()
    events.emit("start", output="/o", generation=2)
    events.emit("progress", "progress: 1/2 shards", logging.WARNING, shards_done=1)
    logging.getLogger("somelib").warning("a library line\nwith a second line")
    LOGGER.error("%s", "", extra={"maskpipe_event": error_record("input.path: gone", 3, "InputError")})
    lines = [json.loads(x) for x in stderr.getvalue().splitlines()]
    assert [x["event"] for x in lines] == ["start", "progress", "log", "error"]
    assert lines[0]["generation"] == 2 and lines[1]["shards_done"] == 1
    assert lines[2] == {"event": "log", "time": lines[2]["time"], "level": "warning", "logger": "somelib",
                        "message": "a library line"}
    assert lines[3]["exit_code"] == 3 and lines[3]["message"] == "input.path: gone"
    assert [r["event"] for r in events.records] == ["start", "progress"]


def test_text_format_prints_only_records_with_a_text(stderr):
    setup_logging(log_format="text")
    events = EventLog()
    events.emit("start", output="/o")
    events.emit("shard", shard="x-000000.tar")
    events.emit("warning", "warning: 1 bad record(s) skipped", logging.WARNING, bad=1)
    out = stderr.getvalue().splitlines()
    assert len(out) == 1 and out[0].endswith("maskpipe WARNING warning: 1 bad record(s) skipped")
    assert len(events.records) == 3


def test_quiet_json_keeps_errors_only(stderr):
    setup_logging(quiet=True, log_format="json")
    EventLog().emit("done", exit_code=0)
    assert stderr.getvalue() == ""


def test_each_published_shard_gets_one_record(monkeypatch):
    spec = SinkSpec("/out", None, "r", 30, 10)
    spec.done = frozenset({0})                       # reused: no record for it
    store = _Store()
    events = EventLog(logger=logging.getLogger("maskpipe.test"))
    p = Progress(store, spec, "off", 30, events)
    store.records = {"r-000000.json": {"path": "r-000000.tar"}, "r-000002.json": {"path": "r-000002.tar",
                                                                                 "samples": 9, "bytes": 5120}}
    p.report_shards()
    store.records["r-000001.json"] = {"path": "r-000001.tar", "samples": 10, "bytes": 6144}
    p.report_shards()
    p.report_shards()
    got = [(r["shard"], r["samples"], r["bytes"], r["rows"]) for r in events.records]
    assert got == [("r-000002.tar", 9, 5120, 10), ("r-000001.tar", 10, 6144, 10)]


@pytest.mark.parametrize("bar, want", [(True, "bar"), (False, "log")])
def test_no_bar_among_json_lines(monkeypatch, bar, want):
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    p = Progress(_Store(), SinkSpec("/out", None, "r", 30, 10), "auto", 30, EventLog(bar=bar))
    assert p.mode == want
    assert Progress(_Store(), SinkSpec("/out", None, "r", 30, 10), "bar", 30, EventLog(bar=False)).mode == "log"
