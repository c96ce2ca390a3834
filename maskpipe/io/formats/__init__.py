"""Input-format registry: a plain dict from the YAML ``input.format`` string to the format.

Adding a format means one module in this package (an :class:`InputFormat` subclass, see
``base.py``) and one line here; the config's ``input.format`` values, the suffixes listed for a
folder input and the locator words in messages all come from this dict (docs/contributing.md).
"""
from __future__ import annotations

from maskpipe.io.formats.base import FilePlan, FormatOptions, InputFormat, ReadContext, Unit
from maskpipe.io.formats.csv import CsvFormat
from maskpipe.io.formats.jsonl import JsonlFormat
from maskpipe.io.formats.parquet import ParquetFormat
from maskpipe.io.formats.webdataset import WebDatasetFormat

FORMATS: dict[str, InputFormat] = {
    ParquetFormat.name: ParquetFormat(),
    JsonlFormat.name: JsonlFormat(),
    CsvFormat.name: CsvFormat(),
    WebDatasetFormat.name: WebDatasetFormat(),
}


def locator_word(fmt: str) -> str:
    """What ``__pos`` counts in format ``fmt`` (``line``, ``row``, ``sample``)."""
    return FORMATS[fmt].locator_word


__all__ = ["FORMATS", "FilePlan", "FormatOptions", "InputFormat", "ReadContext", "Unit", "locator_word"]
