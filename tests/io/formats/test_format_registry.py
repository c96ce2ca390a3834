"""Adding an input format is one module plus its test: a toy format, registered here the way a
module in maskpipe/io/formats/ is registered in its ``__init__.py``, is listed, planned, read
and located by the shared code with no other change (docs/contributing.md)."""
from __future__ import annotations

import typing
from typing import Iterator

import numpy as np
import pyarrow as pa
import pytest

from maskpipe.config import FORMATS as CONFIG_FORMATS
from maskpipe.config import InputConfig, PipelineConfig, infer_format
from maskpipe.errors import BadRecordsError
from maskpipe.io.formats import FORMATS, FilePlan, FormatOptions, InputFormat, ReadContext
from maskpipe.process import Processor
from tests.io.readall import CANARY, bad_of, no_canary, read_all


class TabFormat(InputFormat):
    """The whole toy format: a header line of column names, then tab-separated text lines
    (``__pos``: 1-based line). A line with the wrong number of fields is a ragged row."""

    name = "tsv"
    suffixes = (".tab",)
    locator_word = "line"

    def plan_file(self, fs, path: str, options: FormatOptions, row: int, shard: int) -> FilePlan:
        with fs.open_input_stream(path) as f:
            lines = f.read().decode("utf-8").splitlines()
        names = lines[0].split("\t") if lines else []
        return FilePlan(max(0, len(lines) - 1), pa.schema([(n, pa.string()) for n in names]))

    def read(self, ctx: ReadContext) -> Iterator[pa.Table]:
        with ctx.fs.open_input_stream(ctx.path) as f:
            lines = f.read().decode("utf-8").splitlines()[1:]
        cells = [line.split("\t") for line in lines]
        width = len(ctx.schema)
        good = np.array([len(c) == width for c in cells], dtype=bool)
        table = pa.table({n: [c[i] if ok else None for c, ok in zip(cells, good)] for i, n in enumerate(ctx.schema.names)},
                         schema=ctx.schema)
        rows = ctx.unit.row_start + np.arange(len(cells), dtype=np.int64)
        yield ctx.split_bad(table, ~good, rows, np.arange(2, len(cells) + 2, dtype=np.int64), "ragged_row")


@pytest.fixture
def tab(monkeypatch, tmp_path):
    monkeypatch.setitem(FORMATS, TabFormat.name, TabFormat())
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "a.tab").write_text("id\ttext\nr1\thello\nr2\ttoo\tmany\t" + CANARY + "\nr3\tbye\n")
    (d / "sub" / "a.tab").write_text("id\ttext\nr4\tagain\n")
    (d / "ignored.csv").write_text("id,text\nx,y\n")
    return d


def test_a_registered_format_is_listed_planned_read_and_located(tab):
    assert infer_format("x.tab") == "tsv" and infer_format("x.tab.gz") == "tsv"
    plan, t = read_all(tab, "tsv", shard=2)
    assert plan.display_files == [str(tab / "a.tab"), str(tab / "sub" / "a.tab")]
    assert t.column("id").to_pylist() == ["r1", None, "r3", "r4"]
    assert bad_of(t) == [(3, "ragged_row")]
    assert t.column("__key").to_pylist() == ["a.tab:2", None, "a.tab:4", "sub/a.tab:2"]
    no_canary(t)


def test_the_shared_processing_names_the_new_format_locator(tab, tmp_path):
    plan, t = read_all(tab, "tsv", key="id")
    cfg = {"name": "t", "input": {"path": str(tab), "key": "id"}, "output": {"path": str(tmp_path / "o")}}
    with pytest.raises(BadRecordsError, match=r"a\.tab line 3: bad record \(ragged_row\)") as e:
        Processor(PipelineConfig.model_validate(cfg), plan.display_files, "tsv")(t)
    assert CANARY not in str(e.value)
    cfg["execution"] = {"on_error": "skip"}
    out = Processor(PipelineConfig.model_validate(cfg), plan.display_files, "tsv")(t)
    tars = out.column("__tar").to_pylist()
    assert [b"r1.text.txt" in x and b"hello" in x for x in tars] == [True, False, False, False]
    assert [len(x) > 0 for x in tars] == [True, False, True, True]
    assert out.column("__bad").to_pylist() == [None, "ragged_row", None, None]


def test_the_config_takes_its_format_list_from_the_registry():
    assert CONFIG_FORMATS == tuple(FORMATS) == typing.get_args(typing.get_args(InputConfig.model_fields["format"].annotation)[0])
