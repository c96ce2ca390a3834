"""Fuzzing (hypothesis) of the config loader: properties, not just "it did not crash".

Any YAML text in, and the loader either returns a config or raises a :class:`ConfigError` whose
every problem is one line that starts with the file and names where: a line of that file
(``p.yaml:7: masks.0.ratio: ...``) or, for what has no line, the YAML key it is about. A config
that loads survives a round trip: dumped to YAML and loaded again it is the same config with the
same output hash.
"""
from __future__ import annotations

import json
import os
import re
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskpipe.config import PipelineConfig, load_config
from maskpipe.errors import ConfigError

# MASKPIPE_FUZZ_EXAMPLES=5000 for a deeper run (CI keeps it short)
FUZZ = settings(max_examples=int(os.environ.get("MASKPIPE_FUZZ_EXAMPLES", "80")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BASE = {"name": "fz", "seed": 1, "input": {"path": "data", "format": "jsonl", "key": "id"},
        "masks": [{"kind": "features", "field": "f", "ratio": 0.3}],
        "output": {"path": "out", "shard_samples": 10}, "execution": {"on_error": "skip"}}
# mapping keys without control characters: see test_unknown_key_with_a_newline_is_one_line
KEY_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=4)
scalar = st.one_of(st.none(), st.booleans(), st.integers(-10, 2**64), st.floats(), st.text(max_size=10),
                   st.lists(st.integers(), max_size=2), st.dictionaries(KEY_TEXT, st.integers(), max_size=2))
paths = st.sampled_from([("name",), ("seed",), ("input",), ("input", "path"), ("input", "format"), ("input", "key"),
                         ("input", "formt"), ("masks",), ("masks", 0), ("masks", 0, "kind"), ("masks", 0, "ratio"),
                         ("masks", 0, "rato"), ("output",), ("output", "shard_samples"), ("execution", "on_error"),
                         ("execution", "max_bad_fraction"), ("execution", "parallelism"), ("privacy",), ("extra",)])
# a problem without a line names the key it is about (or the file's top level)
_KEYED = re.compile(r"(missing required key '[^']+'|the top level|^[A-Za-z_][\w]*(\.[\w]+)*: )")


def _set(doc, path, value):
    node = doc
    for p in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(p, {})
        elif isinstance(node, list) and isinstance(p, int) and p < len(node):
            node = node[p]
        else:
            return
    if isinstance(node, dict):
        node[path[-1]] = value
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node[path[-1]] = value


def check_problem(problem: str, source: str, n_lines: int) -> None:
    """One line, starting with the file, then a line of it or the key concerned."""
    assert "\n" not in problem, problem
    assert problem.startswith(source + ":"), problem
    rest = problem[len(source) + 1:]
    m = re.match(r"(\d+): \S", rest)
    if m:
        assert 1 <= int(m.group(1)) <= max(n_lines, 1), problem   # a line that exists
    else:
        assert rest.startswith(" ") and _KEYED.search(rest[1:]), problem


def load_checked(text: str) -> PipelineConfig | None:
    """Load; on ConfigError check every problem. Any other exception fails the test."""
    with tempfile.TemporaryDirectory() as d:
        source = os.path.join(d, "p.yaml")
        try:
            cfg = load_config(source, text=text)
        except ConfigError as e:
            assert e.problems
            for p in e.problems:
                check_problem(p, source, text.count("\n") + 1)
            return None
        # the round trip: what loaded, dumped and loaded again, is the same config
        again = load_config(os.path.join(d, "q.yaml"), text=yaml.safe_dump(cfg.model_dump(mode="json")))
        assert again == cfg
        assert again.output_hash() == cfg.output_hash()
        return cfg


def test_base_loads_and_round_trips():
    assert load_checked(yaml.safe_dump(BASE)) is not None


def test_a_bad_value_is_located_by_line():
    text = yaml.safe_dump(dict(BASE, seed="x"), sort_keys=False)
    with tempfile.TemporaryDirectory() as d:
        source = os.path.join(d, "p.yaml")
        try:
            load_config(source, text=text)
        except ConfigError as e:
            assert e.problems[0].startswith(f"{source}:2: seed: ")
        else:
            raise AssertionError("seed: x must be refused")


@FUZZ
@given(edits=st.lists(st.tuples(paths, scalar), max_size=4))
def test_fuzz_config_values(edits):
    doc = json.loads(json.dumps(BASE))
    for path, value in edits:
        _set(doc, path, value)
    try:
        text = yaml.safe_dump(doc)
    except yaml.YAMLError:
        return
    load_checked(text)


@FUZZ
@given(ratio=st.floats(0, 1), seed=st.integers(0, 2**63 - 1), shard=st.integers(1, 10_000_000),
       on_error=st.sampled_from(["fail", "skip", "quarantine"]), fmt=st.sampled_from(["jsonl", "csv", "parquet"]))
def test_fuzz_valid_mutations_round_trip(ratio, seed, shard, on_error, fmt):
    doc = json.loads(json.dumps(BASE))
    doc["masks"][0]["ratio"], doc["seed"], doc["output"]["shard_samples"] = ratio, seed, shard
    doc["execution"]["on_error"], doc["input"]["format"] = on_error, fmt
    cfg = load_checked(yaml.safe_dump(doc))
    assert cfg is not None
    assert (cfg.masks[0].ratio, cfg.seed, cfg.output.shard_samples) == (ratio, seed, shard)


@FUZZ
@given(text=st.text(alphabet="abcdefgimnopstuxy:_-{}[],'\"\n #&*!|>0123456789.", max_size=120))
def test_fuzz_config_text(text):
    load_checked(text)


@FUZZ
@given(lines=st.permutations(yaml.safe_dump(BASE, sort_keys=False).splitlines()), dup=st.integers(0, 20))
def test_fuzz_config_reordered_and_duplicated_lines(lines, dup):
    lines = list(lines)
    if dup < len(lines):
        lines.append(lines[dup])
    load_checked("\n".join(lines) + "\n")


def test_unknown_key_with_a_newline_is_one_line():
    load_checked(yaml.safe_dump(dict(BASE, output={"path": "out", "a\nb": 0})))
