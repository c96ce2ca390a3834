"""Reading a pipeline YAML safely and in bounded time: :func:`parse_yaml`.

* ``yaml.safe_load`` semantics (no Python objects), duplicate keys refused (PyYAML keeps the
  last one silently);
* bounded: a file over :data:`MAX_CONFIG_BYTES` is refused unread; the document is composed once
  and refused when its aliases would expand past :data:`MAX_YAML_VALUES` values (a "billion
  laughs"), when it nests deeper than :data:`MAX_YAML_DEPTH` or holds itself, before any value
  is built from it;
* a path -> line index for messages, built visiting each node once (never through aliases);
* :func:`show_key`: keys as messages print them (control characters escaped, so one line).
"""
from __future__ import annotations

from typing import Any

import yaml

from maskpipe.errors import ConfigError


MAX_CONFIG_BYTES = 1 << 20      # a pipeline YAML is a few KiB; larger ones are refused unread
MAX_YAML_VALUES = 100_000       # values (mapping keys, items, scalars) once aliases are expanded
MAX_YAML_DEPTH = 64             # mappings and lists nested in one another


def show_key(key: Any) -> str:
    """A YAML key as a message prints it: control characters (a newline...) escaped, so a
    problem stays one line."""
    text = str(key)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (PyYAML silently keeps the last)."""

    duplicates: list[str]


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key (a list as key): PyYAML refuses it below
            continue
        if first is not None:
            loader.duplicates.append(
                f"{line}: duplicate key '{show_key(key)}' (first at line {first}); "
                "YAML would silently keep only the last one, remove one of them"
            )
        else:
            seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _children(node: Any) -> list:
    if isinstance(node, yaml.MappingNode):
        return [x for kv in node.value for x in kv]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_bounds(root: Any, source: str) -> None:
    """Refuse a document that would expand past :data:`MAX_YAML_VALUES` values (aliases of
    aliases: a "billion laughs"), nest deeper than :data:`MAX_YAML_DEPTH`, or hold itself.

    Linear in the composed nodes: each node's expanded size is computed once (an alias is the
    same node object as its anchor), iteratively (no recursion)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        nid = id(node)
        if done:
            kids = _children(node)
            size[nid] = 1 + sum(size[id(k)] for k in kids)
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(nid)
            where = f"{source}:{node.start_mark.line + 1}"
            if size[nid] > MAX_YAML_VALUES:
                raise ConfigError(f"{where}: this value expands to more than {MAX_YAML_VALUES:,} values (YAML "
                                  "aliases of aliases); write the config out, or use fewer aliases")
            if depth[nid] > MAX_YAML_DEPTH:
                raise ConfigError(f"{where}: values nested more than {MAX_YAML_DEPTH} levels deep; a pipeline "
                                  "config needs a few levels, flatten it")
            continue
        if nid in size:
            continue
        if nid in on_path:
            raise ConfigError(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to the value that "
                              "contains it; remove the recursive alias")
        on_path.add(nid)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _line_index(root: Any) -> dict[tuple, int]:
    """Map each YAML path (tuple of keys / indexes) to its 1-based line number.

    Every node is visited once: the value behind an alias is indexed under the path where its
    anchor is, never again under each alias (so an alias-heavy file cannot make this slow)."""
    lines: dict[tuple, int] = {}
    seen: set[int] = set()
    stack = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                p = path + (k.value if isinstance(k, yaml.ScalarNode) else id(k),)
                lines.setdefault(p, k.start_mark.line + 1)
                stack.append((v, p))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, path + (i,)) for i, v in enumerate(node.value))
    return lines


def parse_yaml(text: str, source: str) -> tuple[dict, dict[tuple, int]]:
    """Parse pipeline YAML text safely; returns the data and a path -> line index."""
    data, lines, duplicates = _parse_yaml(text, source)
    if duplicates:
        raise ConfigError(duplicates)
    return data, lines


def _too_big(n: int, source: str) -> ConfigError:
    return ConfigError(f"{source}: {n:,} bytes, over the {MAX_CONFIG_BYTES:,}-byte limit for a pipeline YAML; "
                       "is this the right file? (a pipeline config is a few KiB)")


def _parse_yaml(text: str, source: str) -> tuple[dict, dict[tuple, int], list[str]]:
    """Like :func:`parse_yaml`, but returns duplicate-key problems instead of raising them, so
    they are reported together with everything else that is wrong.

    Bounded: over :data:`MAX_CONFIG_BYTES` is refused before parsing; the document is composed
    once and checked (:func:`_check_bounds`) before any value is built from it."""
    if len(text) > MAX_CONFIG_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise _too_big(len(text.encode("utf-8", "surrogatepass")), source)
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_bounds(root, source)
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{where}: {problem}; fix the YAML syntax") from None
    except RecursionError:
        raise ConfigError(f"{source}: values nested more than {MAX_YAML_DEPTH} levels deep; a pipeline config "
                          "needs a few levels, flatten it") from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys (name, seed, input, ...)")
    return data, _line_index(root) if root is not None else {}, [f"{source}:{d}" for d in loader.duplicates]
