"""tabular: per-sample column masks, fills, mask vector order, determinism."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from maskpipe.errors import InputError
from maskpipe.maskers.tabular import TabularConfig, TabularMasker
from tests.maskers.maskutil import apply, assert_split_invariant, keys

FIELDS = ["age", "income", "city", "member"]


def masker(seed=0, **kw) -> TabularMasker:
    kw.setdefault("fields", FIELDS)
    return TabularMasker(TabularConfig(kind="tabular", **kw), 0, seed)


def table(n=500):
    g = np.random.default_rng(0)
    return pa.table({
        "age": pa.array(g.integers(18, 90, n), pa.int64()),
        "income": pa.array(g.normal(5e4, 1e4, n)),
        "city": pa.array([f"c{i % 7}" for i in range(n)]),
        "member": pa.array(g.integers(0, 2, n).astype(bool)),
        "other": pa.array(np.arange(n)),
    })


def test_values_fill_and_mask_order():
    t = table()
    res = apply(masker(ratio=0.5, fill={"age": -1, "income": 0.0}), t)
    mask = np.array(res.table.column("tabular.mask").to_pylist(), dtype=bool)
    assert mask.shape == (500, 4)
    age, inc, city, mem = (res.table.column(f).to_pylist() for f in FIELDS)
    orig = [t.column(f).to_pylist() for f in FIELDS]
    for i in range(500):
        assert age[i] == (-1 if mask[i, 0] else orig[0][i])
        assert inc[i] == (0.0 if mask[i, 1] else orig[1][i])
        assert city[i] == (None if mask[i, 2] else orig[2][i])
        assert mem[i] == (None if mask[i, 3] else orig[3][i])
    assert res.table.column("other").equals(t.column("other"))
    assert res.table.column("age").type == pa.int64()  # types kept
    np.testing.assert_array_equal(res.masked, mask.sum(1))
    np.testing.assert_array_equal(res.total, 4)


@pytest.mark.parametrize("ratio", [0.1, 0.3, 0.5, 0.9])
def test_exact_count_per_row_and_ratio(ratio):
    res = apply(masker(ratio=ratio), table(4000))
    lo, hi = np.floor(ratio * 4), np.ceil(ratio * 4)
    assert ((res.masked == lo) | (res.masked == hi)).all()
    assert abs(res.masked.sum() / res.total.sum() - ratio) < 0.01
    mask = np.array(res.table.column("tabular.mask").to_pylist())
    assert (np.abs(mask.mean(0) - ratio) < 0.03).all()  # no column favoured


def test_bernoulli_ratio():
    res = apply(masker(ratio=0.3, sampling="bernoulli"), table(4000))
    assert abs(res.masked.sum() / res.total.sum() - 0.3) < 0.015
    assert len(set(res.masked)) > 2


def test_keep_original_name_and_field_property():
    t = table(10)
    m = masker(ratio=0.5, name="meta", keep_original=True)
    assert m.cfg.target().field == "meta"  # stats.json shows the name as the step's field
    res = apply(m, t)
    assert res.table.column("meta.orig").to_pylist() == t.select(FIELDS).to_pylist()
    assert "meta.mask" in res.table.column_names and "tabular.mask" not in res.table.column_names


def test_batch_split_and_same_key():
    t = table(53)
    m = masker(ratio=0.4, fill={"age": 0})
    assert_split_invariant(m, t, [1, 26, 27])
    rev = apply(m, t.take(pa.array(np.arange(53)[::-1])), keys(53)[::-1])
    assert rev.table.column("tabular.mask").to_pylist()[::-1] == apply(m, t).table.column("tabular.mask").to_pylist()


def test_errors():
    with pytest.raises(ValidationError, match="more than once"):
        TabularConfig(kind="tabular", fields=["a", "a"], ratio=0.1)
    with pytest.raises(ValidationError, match="not in fields"):
        TabularConfig(kind="tabular", fields=["a"], ratio=0.1, fill={"b": 1})
    with pytest.raises(InputError, match="cannot be stored"):
        apply(masker(ratio=1.0, fill={"age": 1.5}), table(3))
    with pytest.raises(InputError, match="scalar columns"):
        apply(masker(fields=["v"], ratio=0.5), pa.table({"v": [[1, 2]]}))
    with pytest.raises(InputError, match="no column 'age'"):
        apply(masker(ratio=0.5), pa.table({"x": [1]}))
