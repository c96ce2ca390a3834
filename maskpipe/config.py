"""Pipeline configuration: YAML loading, ``--set`` overrides and whole-config validation.

Everything is validated before Ray starts, and every problem is reported at once with its YAML
path, the line it came from and a hint (see :class:`maskpipe.errors.ConfigError`).

Example:
    >>> from maskpipe.config import load_config
    >>> cfg = load_config("pipelines/demo.yaml", overrides=["seed=7"])  # doctest: +SKIP
    >>> cfg.seed  # doctest: +SKIP
    7
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maskpipe.configyaml import MAX_CONFIG_BYTES, _parse_yaml, _too_big, parse_yaml, show_key
from maskpipe.errors import ConfigError, os_reason
from maskpipe.io.compression import COMPRESSED
from maskpipe.io.formats import FORMATS as _FORMAT_REGISTRY
from maskpipe.maskers import MASKERS
from maskpipe.privacy import PrivacyConfig

FORMATS = tuple(_FORMAT_REGISTRY)   # the input formats, in registry order


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Model):
    """``input:`` where samples come from.

    Args:
        path: a file, folder or glob; local or ``s3://``. Relative paths resolve against the
            YAML file's folder.
        format: one of :data:`FORMATS` (``parquet | jsonl | csv | webdataset``); inferred from
            the extension when absent (see :func:`infer_format`).
        key: the column that gives each sample a stable unique key (WebDataset input: the
            tar's ``__key__``, leave it unset). Without a key column, samples are keyed by
            input file and row (stable only while the input files stay the same).
        csv_delimiter: field separator for CSV input.
    """

    path: str
    format: Literal[FORMATS] | None = None  # type: ignore[valid-type]
    key: str | None = None
    csv_delimiter: str = Field(",", min_length=1, max_length=1)


class OutputConfig(_Model):
    """``output:`` where shards go.

    Args:
        path: output folder, local or ``s3://``.
        shard_samples: samples (input rows) per shard.
        shard_bytes: optional, approximate cap on a shard's size: the shard size in samples
            becomes ``min(shard_samples, shard_bytes // (input bytes // input records))``, the
            input bytes being the input files' sizes on storage (compressed size for ``.gz`` /
            ``.zst``). A function of the input alone, so deterministic; a shard's real size
            differs as far as its samples' output members differ from their input bytes.
    """

    path: str
    shard_samples: int = Field(10_000, gt=0, le=10_000_000)
    shard_bytes: int | None = Field(None, gt=0)


class ExecutionConfig(_Model):
    """``execution:`` how the run is executed. None of these change the output bytes except
    ``on_error``/``max_bad_fraction`` (which decide which samples are kept).

    Args:
        address: ``null`` (default) starts an embedded Ray instance on this machine; ``auto``
            or ``ray://host:10001`` / ``host:6379`` joins an existing cluster.
        parallelism: concurrent read/process/write tasks (default: the cluster's CPUs).
        batch_size: rows per ``map_batches`` call.
        gpus: GPUs per processing worker (0 = CPU only). Masks are identical on CPU and GPU.
        on_error: ``fail`` stops at the first bad record; ``skip`` counts and drops;
            ``quarantine`` counts, drops and writes locators to ``quarantine.jsonl``.
        max_bad_fraction: with ``skip``/``quarantine``, fail the run when more than this share
            of input records is bad.
        s3_endpoint: endpoint override for ``s3://`` paths (else ``AWS_ENDPOINT_URL``).
        progress: ``auto`` (bar on a terminal, periodic line otherwise), ``bar``, ``log``, ``off``.
    """

    address: str | None = None
    parallelism: int | None = Field(None, gt=0)
    batch_size: int = Field(1000, gt=0)
    gpus: float = Field(0, ge=0)
    on_error: Literal["fail", "skip", "quarantine"] = "fail"
    max_bad_fraction: float | None = Field(None, ge=0, le=1)
    s3_endpoint: str | None = None
    progress: Literal["auto", "bar", "log", "off"] = "auto"

    @field_validator("progress", mode="before")
    @classmethod
    def _yaml_off(cls, v: Any) -> Any:
        # YAML 1.1 (PyYAML) reads a bare `off` as False; the user meant the documented "off"
        return "off" if v is False else v


MaskConfig = Annotated[
    Union[tuple(m.Config for m in MASKERS.values())],  # type: ignore[misc]
    Field(discriminator="kind"),
]


MAX_EPOCHS = 1000


class PipelineConfig(_Model):
    """The whole ``pipeline.yaml``. See docs/pipeline.md for every key with examples.

    ``epochs: K`` (default 1) writes K differently masked copies of every sample (dynamic
    masking done offline): copy ``e`` keys its randomness by the epoch too and takes epoch
    ``e``'s value of any ratio schedule (docs/masks.md, "Epochs and schedules").
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    seed: int = Field(0, ge=0, lt=2**63)
    epochs: int = Field(1, ge=1, le=MAX_EPOCHS)
    input: InputConfig
    privacy: PrivacyConfig | None = None
    masks: list[MaskConfig] = Field(default_factory=list)
    output: OutputConfig
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @field_validator("privacy", mode="before")
    @classmethod
    def _empty_privacy(cls, v: Any) -> Any:
        return None if v in (None, {}) else v

    @field_validator("masks", mode="before")
    @classmethod
    def _null_masks(cls, v: Any) -> Any:
        return [] if v is None else v

    @model_validator(mode="after")
    def _cross_checks(self) -> "PipelineConfig":
        if self.input.format == "webdataset" and self.input.key not in (None, "__key__"):
            raise ValueError("input.key: WebDataset input is keyed by the tar's __key__; remove input.key")
        return self

    def output_hash(self) -> str:
        """sha256 of everything that can change the output bytes (not paths or parallelism)."""
        from maskpipe import __version__

        data = self.model_dump(mode="json")
        if data.get("epochs") == 1:  # the default: hashed as before epochs existed (same config hash)
            data.pop("epochs")
        data["input"].pop("path", None)
        data["output"].pop("path", None)
        ex = data.pop("execution")
        data["on_error"] = ex["on_error"]
        data["max_bad_fraction"] = ex["max_bad_fraction"]
        data["maskpipe_version"] = __version__
        data["masks"] = self.mask_dumps()
        scan = (data.get("privacy") or {}).get("scan") or {}
        if scan.get("ner_model"):  # the model decides what is masked: its files, not its path
            scan["ner_model"] = _folder_digest(scan["ner_model"])
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


    def mask_dumps(self) -> list[dict]:
        """The mask steps as JSON, with every file they read named by its content's sha256
        (``sha256:<hex>``) instead of its path: what the output hash covers, and what
        ``masks.json`` publishes (no local paths)."""
        dumps = [m.model_dump(mode="json") for m in self.masks]
        for m in dumps:
            if m.get("tokenizer"):
                m["tokenizer"] = _file_digest(m["tokenizer"])
            if isinstance(m.get("template"), dict) and m["template"].get("path"):
                m["template"]["path"] = _file_digest(m["template"]["path"])
        return dumps


def _file_digest(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return "sha256:" + hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return "missing:" + os.path.basename(path)


def _folder_digest(path: str) -> str:
    """sha256 of a folder's files: their paths relative to it and their contents' sha256."""
    if not os.path.isdir(path):
        return "missing:" + os.path.basename(path.rstrip("/"))
    items = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(folder, name)
            items.append([os.path.relpath(full, path).replace(os.sep, "/"), _file_digest(full)])
    return "sha256:" + hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()


# ----------------------------------------------------------------------------------- YAML


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``dotted.key=value`` overrides in place; values are parsed as YAML scalars.

    A numeric part indexes an existing list item (``masks.0.ratio=0.2``); missing mappings are
    created, list items never are (a problem names the ``--set`` part that does not exist).
    """
    problems = []
    for item in overrides:
        if "=" not in item:
            problems.append(f"--set {item!r}: expected dotted.key=value, e.g. --set seed=7")
            continue
        dotted, raw = item.split("=", 1)
        parts = [p for p in dotted.strip().split(".")]
        shown = show_key(dotted.strip())
        if not all(parts):
            problems.append(f"--set {shown}: empty key part; use e.g. output.path=out/x")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node: Any = data
        ok = True
        for i, part in enumerate(parts[:-1]):
            nxt = _child(node, part)
            if nxt is _MISSING:
                here = show_key(".".join(parts[:i + 1]))
                if isinstance(node, list):
                    problems.append(f"--set {here}: {_no_item(parts[:i], part, node)}")
                    ok = False
                    break
                if isinstance(node, dict) and parts[i + 1].isdigit():
                    problems.append(f"--set {show_key('.'.join(parts[:i + 2]))}: '{here}' is not a list in the "
                                    "config; add the list to the YAML (--set cannot create list items)")
                    ok = False
                    break
                if isinstance(node, dict):
                    node[part] = {}
                    nxt = node[part]
                else:
                    problems.append(f"--set {shown}: '{here}' does not exist")
                    ok = False
                    break
            node = nxt
        if not ok:
            continue
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                problems.append(f"--set {shown}: {_no_item(parts[:-1], last, node)}")
                continue
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            problems.append(f"--set {shown}: parent is not a mapping")
    if problems:
        raise ConfigError(problems)
    return data


def _no_item(parent: list[str], part: str, items: list) -> str:
    name = show_key(".".join(parent)) or "the list"
    if not part.isdigit():
        return f"{name} is a list; index it with a number (0 to {len(items) - 1})" if items else f"{name} is an empty list"
    have = f"items 0 to {len(items) - 1}" if items else "no items"
    return f"no list item {part} ({name} has {have}); --set cannot add list items, add them to the YAML"


_MISSING = object()


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part, _MISSING)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return _MISSING


def _format_errors(err: ValidationError, data: dict, source: str, lines: dict[tuple, int],
                   overridden: frozenset[str] = frozenset()) -> list[str]:
    entries = []  # (("missing", *path) or the path a did-you-mean points at, or None; message)
    for e in err.errors(include_url=False, include_input=False):
        loc = list(e["loc"])
        # pydantic puts the discriminator tag in the path of union members: drop it
        clean: list = []
        node: Any = data
        for part in loc:
            if isinstance(node, dict) and part not in node and isinstance(part, str) and part in MASKERS:
                continue
            if isinstance(part, str) and part.startswith("<") and part.endswith(">"):
                continue  # a union tag (ratio: number or schedule), not a YAML key
            clean.append(part)
            node = node.get(part) if isinstance(node, dict) else (
                node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
        path = ".".join(show_key(p) for p in clean)
        where = _where(clean, source, lines, overridden)
        etype = e["type"]
        if etype == "extra_forbidden":
            parent = _parent_model(clean, data)
            allowed = sorted(parent.model_fields) if parent else []
            guess = difflib.get_close_matches(str(clean[-1]), allowed, n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"allowed keys: {', '.join(allowed)}"
            entries.append((tuple(clean[:-1]) + (guess[0],) if guess else None,
                            f"{where}: unknown key '{path}'; {hint}"))
        elif etype == "missing":
            entries.append((("missing",) + tuple(clean),
                            f"{where}: missing required key '{path}'; add it (see docs/pipeline.md)"))
        elif etype == "union_tag_invalid" or etype == "union_tag_not_found":
            entries.append((None, f"{where}: {path}: unknown mask kind; use one of: {', '.join(sorted(MASKERS))}"))
        else:
            msg = e["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            entries.append((None, f"{where}: {path}: {msg}"))
    # A typo'd required key (``outptu:``) is one problem, not two: its did-you-mean line already
    # says what is missing, so drop the separate "missing 'output'" line.
    suggested = {k for k, m in entries if k and k[0] != "missing"}
    return [m for k, m in entries if not (k and k[0] == "missing" and k[1:] in suggested)]


def _where(path: list, source: str, lines: dict[tuple, int], overridden: frozenset[str]) -> str:
    """``file:line`` of a YAML path, or ``--set key`` when the value came from an override."""
    for n in range(len(path), 0, -1):
        dotted = ".".join(str(p) for p in path[:n])
        if dotted in overridden:
            return f"--set {show_key(dotted)}"
    if tuple(path) not in lines:  # not in the YAML: made by an override below it (``seed.x=1``)
        dotted = ".".join(str(p) for p in path)
        below = sorted(o for o in overridden if o.startswith(dotted + ".")) if path else []
        if below:
            return f"--set {show_key(below[0])}"
    for n in range(len(path), -1, -1):
        line = lines.get(tuple(path[:n]))
        if line:
            return f"{source}:{line}"
    return source


def _parent_model(path: list, data: dict) -> type[BaseModel] | None:
    """The model that holds the last key of ``path`` (a masker's Config for ``masks.N.key``)."""
    if len(path) == 3 and path[0] == "masks" and isinstance(path[1], int):
        masks = data.get("masks")
        item = masks[path[1]] if isinstance(masks, list) and path[1] < len(masks) else None
        kind = item.get("kind") if isinstance(item, dict) else None
        return MASKERS[kind].Config if isinstance(kind, str) and kind in MASKERS else None
    model: Any = PipelineConfig
    parts = path[:-1]
    if path and path[0] == "masks":  # deeper inside a mask: walk from its kind's model
        model = _parent_model(path[:3], data) if len(path) > 3 else None
        parts = path[2:-1]
    for part in parts:
        if isinstance(part, int):
            continue
        if model is None or not hasattr(model, "model_fields") or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = _first_model(ann)
    return model


def _first_model(ann: Any) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        m = _first_model(arg)
        if m is not None:
            return m
    return None


def _resolve(path: str, base: Path) -> str:
    if "://" in path:
        return path
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p).resolve())


def _resolve_paths(data: dict, yaml_dir: Path, cwd: Path, overridden: set[str]) -> None:
    def fix(section: Any, key: str, dotted: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str):
            # ``--set output={path: x}`` overrides output.path too: any overridden prefix counts
            from_cli = any(dotted == o or dotted.startswith(o + ".") for o in overridden)
            base = cwd if from_cli else yaml_dir
            section[key] = _resolve(section[key], base)

    fix(data.get("input"), "path", "input.path")
    fix(data.get("output"), "path", "output.path")
    masks = data.get("masks")
    if isinstance(masks, list):
        for i, m in enumerate(masks):
            fix(m, "tokenizer", f"masks.{i}.tokenizer")
            if isinstance(m, dict):
                fix(m.get("template"), "path", f"masks.{i}.template.path")
    privacy = data.get("privacy")
    if isinstance(privacy, dict):
        fix(privacy.get("scan"), "ner_model", "privacy.scan.ner_model")


def load_config(path: str | os.PathLike, overrides: list[str] | None = None,
                text: str | None = None) -> PipelineConfig:
    """Load, override, resolve and validate a pipeline YAML.

    Relative paths in the file resolve against the file's folder; relative paths given with
    ``--set`` resolve against the current directory (where the user typed them).

    Raises:
        ConfigError: with every problem found, each naming its YAML key and line.
    """
    path = Path(path)
    source = str(path)
    if text is None:
        try:
            size = path.stat().st_size
            if size > MAX_CONFIG_BYTES:
                raise _too_big(size, source)
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{source}: file not found; pass the path to a pipeline YAML") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: not UTF-8 text; save the pipeline YAML as UTF-8") from None
        except IsADirectoryError:
            raise ConfigError(f"{source}: is a folder; pass the path to a pipeline YAML") from None
        except OSError as e:
            raise ConfigError(f"{source}: cannot read ({os_reason(e)}); check the path and its permissions") from None
    data, lines, problems = _parse_yaml(text, source)
    overrides = list(overrides or [])
    try:
        apply_overrides(data, overrides)  # applies the good ones even when others fail
    except ConfigError as e:
        problems += e.problems
    overridden = {o.split("=", 1)[0].strip() for o in overrides if "=" in o}
    _resolve_paths(data, path.parent.resolve(), Path.cwd(), overridden)
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(problems + _format_errors(err, data, source, lines, frozenset(overridden))) from None
    from maskpipe.config_schema import type_messages  # what pydantic would coerce (`seed: yes`): the schema's types

    problems += type_messages(data, lambda path: _where(path, source, lines, frozenset(overridden)))
    for i, m in enumerate(cfg.masks):
        problems += [f"{source}:{lines.get(('masks', i), '?')}: masks.{i}.{p}" for p in MASKERS[m.kind].preflight(m)]
    if cfg.privacy is not None:
        from maskpipe.privacy import privacy_preflight

        problems += [f"{source}: {p}" for p in privacy_preflight(cfg.privacy, "privacy")]
    if problems:
        raise ConfigError(problems)
    return cfg


def infer_format(path: str) -> str | None:
    """The input format whose suffixes ``path`` ends with, compression suffixes aside
    (``a.jsonl.gz`` -> ``jsonl``); None when no registered format claims it."""
    p = _strip_compression(path.lower())
    for name, fmt in _FORMAT_REGISTRY.items():
        bases = {_strip_compression(s) for s in fmt.suffixes} - {""}
        if p.endswith(tuple(bases)):
            return name
    return None


def _strip_compression(p: str) -> str:
    for suffix in COMPRESSED:
        if p.endswith(suffix):
            return p[: -len(suffix)]
    return p


__all__ = ["PipelineConfig", "InputConfig", "OutputConfig", "ExecutionConfig", "load_config",
           "parse_yaml", "apply_overrides", "infer_format", "FORMATS"]
