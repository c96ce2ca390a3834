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

import functools
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
    "epochs": ("Copies of every sample to write, each masked anew (dynamic masking done offline); copy e keys its "
               "randomness by the epoch and takes epoch e's value of any ratio schedule. Default 1."),
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


@functools.lru_cache(maxsize=1)   # explicit cache: the schema is a function of the code alone (no key)
def _cached_schema() -> dict:
    return pipeline_schema()


_JSON_TYPES = {
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def yaml_type(v) -> str:
    """The JSON Schema type name of a YAML value (for messages: never the value itself)."""
    return next((t for t, ok in _JSON_TYPES.items() if t != "integer" and ok(v)), type(v).__name__)


def type_problems(data) -> list[tuple[list, str, str]]:
    """(YAML path, expected type, YAML type) of every value whose type the schema refuses.

    pydantic would coerce some of them (``seed: yes`` -> 1, ``ratio: "0.2"`` -> 0.2);
    :func:`maskpipe.config.load_config` reports them instead, so that a config the schema
    rejects is rejected by ``maskpipe validate`` too. Only types are checked here: ranges,
    enums and required keys are pydantic's (the same constraints as the schema's)."""
    schema = _cached_schema()
    out: list[tuple[list, str, str]] = []
    _walk(data, schema, schema["$defs"], [], out)
    return out


def type_messages(data, where) -> list[str]:
    """:func:`type_problems` as config problems; ``where(path)`` gives ``file:line`` or ``--set key``."""
    return [f"{where(path)}: {'.'.join(str(p) for p in path)}: expected {want}, the YAML value is {got}; write it "
            f"as a YAML {want} (a quoted number is a string)" for path, want, got in type_problems(data)]


def _walk(value, node: dict, defs: dict, path: list, out: list) -> bool:
    """Check ``value`` against ``node``; appends problems unless ``out`` is None; True when fine."""
    while "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        disc = node.get("discriminator")
        if disc and isinstance(value, dict) and value.get(disc["propertyName"]) in disc["mapping"]:
            return _walk(value, defs[disc["mapping"][value[disc["propertyName"]]].split("/")[-1]], defs, path, out)
        if any(_walk(value, o, defs, path, None) for o in options):
            return True
        typed = [o for o in options if _type_ok(value, o, defs)]
        if typed and out is not None:   # the right kind of value, wrong inside: say where inside
            _walk(value, typed[0], defs, path, out)
        elif out is not None:
            want = " or ".join(sorted({_type_name(o, defs) for o in options} - {""}))
            out.append((path, want, yaml_type(value)))
        return False
    want = node.get("type")
    if want and not _JSON_TYPES[want](value):
        if out is not None:
            out.append((path, want, yaml_type(value)))
        return False
    if "const" in node or "enum" in node:
        return True   # which value it is: pydantic's check
    ok = True
    if isinstance(value, dict):
        props, extra = node.get("properties", {}), node.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is not None:
                ok = _walk(v, sub, defs, path + [k], out) and ok
    elif isinstance(value, list):
        prefix, items = node.get("prefixItems", []), node.get("items")
        for i, v in enumerate(value):
            sub = prefix[i] if i < len(prefix) else items if isinstance(items, dict) else None
            if sub is not None:
                ok = _walk(v, sub, defs, path + [i], out) and ok
    return ok


def _type_ok(value, node: dict, defs: dict) -> bool:
    while "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    want = node.get("type")
    return bool(want) and _JSON_TYPES[want](value)


def _type_name(node: dict, defs: dict) -> str:
    while "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    if "const" in node:
        return repr(node["const"]).lower() if isinstance(node["const"], bool) else "a fixed value"
    return node.get("type", "")


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
