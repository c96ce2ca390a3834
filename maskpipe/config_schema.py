"""The JSON Schema of ``pipeline.yaml``, generated from the pydantic models (``maskpipe schema``).

Editors (the YAML language server's ``# yaml-language-server: $schema=...`` line) autocomplete
and check a pipeline with it, and CI can lint configs with any JSON Schema validator. It is the
structure only: ``maskpipe validate`` also checks what a schema cannot say (files exist, a
tokenizer loads, cross-key rules such as ``input.key`` with WebDataset input), so a config the
schema rejects is rejected by ``validate``, not always the other way round.

Descriptions come from the models' Google-style docstrings: a model's summary, and each key's
entry of its ``Args:`` / ``Attributes:`` section (``a / b: text`` documents both keys). Two
spellings that the loader accepts on purpose are added: ``execution.progress: off`` (YAML 1.1
reads a bare ``off`` as false) and ``masks: null``.

Example:
    >>> s = pipeline_schema()
    >>> s["properties"]["seed"]["description"].startswith("Seeds every mask")
    True
    >>> sorted(k["properties"]["kind"]["const"] for k in _mask_defs(s))[:3]
    ['features', 'image_block', 'image_erase']
"""
from __future__ import annotations

import inspect
import re

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

_SECTION = re.compile(r"^\s*(Args|Attributes|Arguments):\s*$")
_ENTRY = re.compile(r"^(\s+)([A-Za-z_][\w]*(?:\s*/\s*[A-Za-z_]\w*)*)\s*(?:\([^)]*\))?:\s*(.*)$")

# keys documented in docs/pipeline.md rather than in a model docstring
TOP_LEVEL = {
    "name": "Letters, digits, _ and -; names the shards: <name>-000000.tar.",
    "seed": "Seeds every mask: random draws are hashes of (seed, step, stream, sample key, position).",
    "input": "Where samples come from (path, format, key column).",
    "privacy": "Privacy rules applied before any mask: drop, redact, pseudonymize fields; scan text for PII.",
    "masks": "Mask steps, applied in order; each item's kind picks the masker.",
    "output": "Where shards go and how large they are.",
    "execution": "How the run is executed (Ray address, parallelism, bad-record policy, progress).",
}


def docstring_args(cls: type) -> tuple[str, dict[str, str]]:
    """(summary, key -> description) from a class's Google-style docstring."""
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    summary_lines = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary_lines.append(line.strip())
    args: dict[str, str] = {}
    in_section, indent, current = False, None, []
    for line in lines + [""]:
        if _SECTION.match(line):
            in_section, indent, current = True, None, []
            continue
        if not in_section:
            continue
        m = _ENTRY.match("    " + line) if indent is None and line and not line.startswith(" ") else _ENTRY.match(line)
        this_indent = len(line) - len(line.lstrip())
        if m and (indent is None or this_indent == indent):
            indent = this_indent
            current = [n.strip() for n in m.group(2).split("/")]
            for n in current:
                args[n] = m.group(3).strip()
        elif line.strip() and indent is not None and this_indent > indent and current:
            for n in current:
                args[n] = (args[n] + " " + line.strip()).strip()
        elif line.strip() and indent is not None and this_indent < indent:
            in_section = False   # the next section (Example:, ...) begins
        elif not line.strip():
            current = []
    return " ".join(summary_lines), args


class _WithDocstrings(GenerateJsonSchema):
    """Model and key descriptions from docstrings, where pydantic has none."""

    def model_schema(self, schema):
        js = super().model_schema(schema)
        cls = schema.get("cls")
        if isinstance(cls, type) and issubclass(cls, BaseModel):
            summary, args = docstring_args(cls)
            target = self._target(js)
            if summary:
                target["description"] = summary
            props = target.get("properties", {})
            for name, prop in props.items():
                if "description" not in prop and name in args:
                    prop["description"] = args[name]
                elif name == "kind" and "const" in prop:
                    prop.setdefault("description", f"selects the {prop['const']} masker (docs/masks.md)")
                elif len(props) == 1 and summary:
                    prop.setdefault("description", summary)
        return js

    def _target(self, js: dict) -> dict:
        if "$ref" in js and "properties" not in js:
            ref = js["$ref"].split("/")[-1]
            return self.definitions.get(ref, js)
        return js


def _mask_defs(schema: dict) -> list[dict]:
    items = schema["properties"]["masks"]
    items = items.get("items") or next(a["items"] for a in items["anyOf"] if "items" in a)
    refs = [o["$ref"].split("/")[-1] for o in items["oneOf"]]
    return [schema["$defs"][r] for r in refs]


def pipeline_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a pipeline YAML."""
    from maskpipe.config import PipelineConfig

    schema = PipelineConfig.model_json_schema(schema_generator=_WithDocstrings)
    for name, text in TOP_LEVEL.items():
        schema["properties"][name].setdefault("description", text)
    masks = schema["properties"]["masks"]
    schema["properties"]["masks"] = {"anyOf": [masks, {"type": "null"}], "description": masks.get("description")}
    progress = schema["$defs"]["ExecutionConfig"]["properties"]["progress"]
    schema["$defs"]["ExecutionConfig"]["properties"]["progress"] = {
        "anyOf": [{k: v for k, v in progress.items() if k not in ("default", "description", "title")},
                  {"const": False, "description": "YAML 1.1 reads a bare `off` as false: the same as \"off\""}],
        "default": progress.get("default"), "description": progress.get("description", ""), "title": "Progress"}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "maskpipe pipeline.yaml", **{k: v for k, v in schema.items() if k != "title"}}
