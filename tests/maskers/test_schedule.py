"""Ratio schedules: values per epoch (against formulas written here), validation naming the key."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe.config import PipelineConfig, load_config
from maskpipe.errors import ConfigError
from maskpipe.maskers.schedule import Schedule, mean_value, value_at

ratios = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_subnormal=False)
epochs = st.integers(min_value=2, max_value=200)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["linear", "cosine"]), start=ratios, end=ratios, k=epochs)
def test_ends_are_exact(kind, start, end, k):
    s = Schedule(schedule=kind, start=start, end=end)
    assert value_at(s, 0, k) == start
    assert value_at(s, k - 1, k) == end
    assert value_at(s, 0, 1) == start == value_at(s, 5, 1)   # K = 1: the start value, every epoch
    assert value_at(s, k + 7, k) == end                      # past the last epoch (online re-masking): the end


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["linear", "cosine"]), start=ratios, end=ratios, k=epochs)
def test_monotone_and_within_the_ends(kind, start, end, k):
    s = Schedule(schedule=kind, start=start, end=end)
    vals = [value_at(s, e, k) for e in range(k)]
    lo, hi = min(start, end), max(start, end)
    assert all(lo <= v <= hi for v in vals)
    pairs = list(zip(vals, vals[1:]))
    assert all(b >= a for a, b in pairs) if end >= start else all(b <= a for a, b in pairs)


@settings(max_examples=200, deadline=None)
@given(start=ratios, end=ratios, k=epochs, data=st.data())
def test_linear_and_cosine_formulas(start, end, k, data):
    e = data.draw(st.integers(min_value=0, max_value=k - 1))
    t = e / (k - 1)
    lin = value_at(Schedule(schedule="linear", start=start, end=end), e, k)
    cos = value_at(Schedule(schedule="cosine", start=start, end=end), e, k)
    assert lin == pytest.approx(start + (end - start) * t, abs=1e-12)
    assert cos == pytest.approx(start + (end - start) * (1 - math.cos(math.pi * t)) / 2, abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(ratios, min_size=1, max_size=12), k=epochs, data=st.data())
def test_step_picks_the_item_of_its_part(values, k, data):
    s = Schedule(schedule="step", values=values)
    e = data.draw(st.integers(min_value=0, max_value=k - 1))
    # oracle: exact rationals, the n values splitting [0, 1] into n equal parts (the last closed)
    t = Fraction(e, k - 1)
    part = min(len(values) - 1, math.floor(t * len(values)))
    assert value_at(s, e, k) == values[part]


@settings(max_examples=100, deadline=None)
@given(values=st.lists(ratios, min_size=2, max_size=30))
def test_step_with_as_many_values_as_epochs_takes_them_in_order(values):
    s = Schedule(schedule="step", values=values)
    assert [value_at(s, e, len(values)) for e in range(len(values))] == values


def test_issue_example_and_mean():
    s = Schedule(schedule="linear", start=0.15, end=0.45)
    assert [value_at(s, e, 3) for e in range(3)] == pytest.approx([0.15, 0.30, 0.45])
    assert mean_value(s, 3) == 0.3 and mean_value(0.2, 3) == 0.2 and mean_value(None, 3) is None


BASE = """name: x
input: {path: /tmp, format: parquet}
output: {path: /tmp/o}
masks:
  - kind: %s
    %s
"""
KINDS = {  # kind -> (its other required keys, the ratio key)
    "mlm": ({"field": "f", "mask_id": 1, "vocab_size": 9}, "ratio"),
    "whole_word": ({"field": "f", "tokenizer": "t.json"}, "ratio"),
    "span": ({"field": "f", "sentinel_start_id": 199}, "noise_density"),
    "features": ({"field": "f"}, "ratio"),
    "tabular": ({"fields": ["a", "b"]}, "ratio"),
    "image_patch": ({"field": "f"}, "ratio"),
    "image_block": ({"field": "f"}, "ratio"),
}


def _load(kind: str, ratio: str) -> PipelineConfig:
    extra, key = KINDS[kind]
    mask = {"kind": kind, **extra, key: yaml.safe_load(ratio)}
    return PipelineConfig.model_validate({"name": "x", "input": {"path": "/tmp"}, "output": {"path": "/tmp/o"},
                                          "masks": [mask]})


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_ratio_kind_takes_a_schedule(kind):
    cfg = _load(kind, "{schedule: linear, start: 0.1, end: 0.4}")
    key = KINDS[kind][1]
    assert isinstance(getattr(cfg.masks[0], key), Schedule)
    cfg = _load(kind, "0.25")
    assert getattr(cfg.masks[0], key) == 0.25


@pytest.mark.parametrize("ratio, message", [
    ("{schedule: linear, start: 0.1, end: 1.5}", "masks.0.ratio.end: Input should be less than or equal to 1"),
    ("{schedule: step, values: [0.1, -0.5]}", "masks.0.ratio.values.1: Input should be greater than or equal to 0"),
    ("{schedule: cosine, start: 0.1}", "masks.0.ratio: cosine needs start and end"),
    ("{schedule: step, start: 0.1, values: [0.2]}", "masks.0.ratio: step takes values, not start/end"),
    ("{schedule: linear, start: 0.1, end: 0.2, vals: [1]}", "unknown key 'masks.0.ratio.vals'"),
    ("{schedule: exponential, start: 0.1, end: 0.2}", "masks.0.ratio.schedule: Input should be 'linear', 'cosine' or 'step'"),
    ("1.5", "masks.0.ratio: Input should be less than or equal to 1"),
])
def test_errors_name_the_yaml_key(tmp_path, ratio, message):
    text = BASE % ("features", f"field: f\n    ratio: {ratio}")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "p.yaml", text=text)
    lines = str(e.value).splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith(f"{tmp_path / 'p.yaml'}:7: ")


def test_span_bounds_apply_to_its_schedule(tmp_path):
    text = BASE % ("span", "field: f\n    sentinel_start_id: 199\n    noise_density: {schedule: step, values: [0.2, 1.0]}")
    with pytest.raises(ConfigError, match=r"masks\.0\.noise_density\.values\.1: Input should be less than 1"):
        load_config(tmp_path / "p.yaml", text=text)


def test_epochs_key(tmp_path):
    text = "name: x\ninput: {path: /tmp, format: parquet}\noutput: {path: /tmp/o}\nepochs: 0\n"
    with pytest.raises(ConfigError, match=r":4: epochs: Input should be greater than or equal to 1"):
        load_config(tmp_path / "p.yaml", text=text)
    one = load_config(tmp_path / "p.yaml", text=text.replace("epochs: 0\n", ""))
    also_one = load_config(tmp_path / "p.yaml", text=text.replace("epochs: 0", "epochs: 1"))
    three = load_config(tmp_path / "p.yaml", text=text.replace("epochs: 0", "epochs: 3"))
    assert one.epochs == 1 and three.epochs == 3
    # epochs: 1 is the default and hashes as a config written before the key existed
    assert one.output_hash() == also_one.output_hash() != three.output_hash()
