"""``features`` masker: X' = where(mask, fill, X), exact / bernoulli rates, bad and null rows."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskpipe import rng
from maskpipe.errors import InputError
from maskpipe.maskers.features import FeaturesConfig, FeaturesMasker
from maskpipe.rng import key_hashes


def masker(seed=0, index=0, **kw) -> FeaturesMasker:
    args = dict(kind="features", field="x", ratio=0.3)
    args.update(kw)
    return FeaturesMasker(FeaturesConfig(**args), index, seed)


def keys(n, prefix="r"):
    return [f"{prefix}{i}" for i in range(n)]


@pytest.fixture(scope="module")
def ragged_table() -> pa.Table:
    g = np.random.default_rng(3)
    data = [g.normal(size=int(g.integers(0, 60))).tolist() for _ in range(4000)]
    return pa.table({"x": pa.array(data, pa.list_(pa.float64()))})


def test_masked_values_are_where_mask_fill_x(ragged_table):
    res = masker(fill=-1.5).apply(ragged_table, key_hashes(keys(len(ragged_table))))
    assert res.table.schema.field("x.mask").type == pa.list_(pa.uint8())
    assert res.table.schema.field("x").type == pa.list_(pa.float64())
    orig = ragged_table.column("x").to_pylist()
    out = res.table.column("x").to_pylist()
    masks = res.table.column("x.mask").to_pylist()
    for o, x, m in zip(orig, out, masks):
        o, x, m = np.array(o), np.array(x), np.array(m, dtype=np.uint8)
        assert set(np.unique(m).tolist()) <= {0, 1}
        np.testing.assert_array_equal(x, np.where(m == 1, -1.5, o))
    assert res.masked.tolist() == [int(np.sum(m)) for m in masks]
    assert res.total.tolist() == [len(o) for o in orig]
    assert res.bad is None


def test_exact_sampling_is_floor_ratio_n_plus_u(ragged_table):
    n_rows = len(ragged_table)
    ks = keys(n_rows)
    m = masker(seed=11, index=2, ratio=0.3, sampling="exact")
    res = m.apply(ragged_table, key_hashes(ks))
    n = res.total
    u = rng.uniform(key_hashes(ks), np.zeros(n_rows, dtype=np.int64), rng.stream_seed(11, 2, rng.STREAM_ROW))
    np.testing.assert_array_equal(res.masked, np.floor(0.3 * n + u).astype(np.int64))
    # unbiased: the mean count per row equals ratio * n
    assert abs(res.masked.sum() / n.sum() - 0.3) < 0.003


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_exact_sampling_extremes(ragged_table, ratio):
    res = masker(ratio=ratio).apply(ragged_table, key_hashes(keys(len(ragged_table))))
    assert res.masked.tolist() == (res.total if ratio else np.zeros_like(res.total)).tolist()


def test_exact_mean_over_many_short_rows():
    # n = 7, ratio 0.3: counts are 2 or 3, 2.1 on average
    data = pa.array([[1.0] * 7] * 20_000, pa.list_(pa.float32()))
    res = masker(ratio=0.3).apply(pa.table({"x": data}), key_hashes(keys(20_000)))
    assert set(res.masked.tolist()) == {2, 3}
    assert abs(res.masked.mean() - 2.1) < 0.01


def test_bernoulli_rate(ragged_table):
    res = masker(ratio=0.25, sampling="bernoulli").apply(ragged_table, key_hashes(keys(len(ragged_table))))
    assert res.total.sum() > 100_000
    assert abs(res.masked.sum() / res.total.sum() - 0.25) < 0.005
    assert len(set(res.masked[res.total == 40].tolist())) > 3  # per-row counts vary, unlike exact


def test_non_finite_rows_flagged_bad():
    data = pa.array([[1.0, 2.0], [np.nan, 1.0], [3.0], [np.inf], [-np.inf, 0.0], [4.0]], pa.list_(pa.float64()))
    res = masker().apply(pa.table({"x": data}), key_hashes(keys(6)))
    assert res.bad.tolist() == [False, True, False, True, True, False]
    assert res.reason == "non_finite"


def test_null_rows_and_null_entries():
    data = pa.array([[1.0, 2.0], None, [], [3.0, 4.0, 5.0]], pa.list_(pa.float64()))
    res = masker(ratio=1.0).apply(pa.table({"x": data}), key_hashes(keys(4)))
    assert res.table.column("x").to_pylist() == [[0.0, 0.0], None, [], [0.0, 0.0, 0.0]]
    assert res.table.column("x.mask").to_pylist() == [[1, 1], None, [], [1, 1, 1]]
    assert res.total.tolist() == [2, 0, 0, 3] and res.masked.tolist() == [2, 0, 0, 3]
    assert res.bad is None


@pytest.mark.parametrize("ratio", [0.0, 0.3])
@pytest.mark.parametrize("type_", [pa.int64(), pa.float32()])
def test_null_entry_flags_row_bad(type_, ratio):
    # a null inside a list is no number: the row is bad, the others are fine (whether or not
    # the null's position happens to be masked)
    data = pa.array([[1, None, 3], [4, 5]], pa.list_(type_))
    res = masker(ratio=ratio).apply(pa.table({"x": data}), key_hashes(keys(2)))
    assert res.bad.tolist() == [True, False] and res.reason == "non_finite"
    good = res.table.column("x").to_pylist()[1]
    mask = res.table.column("x.mask").to_pylist()[1]
    assert good == [0 if m else v for v, m in zip([4, 5], mask)]


@pytest.mark.parametrize("type_", [pa.list_(pa.float64()), pa.list_(pa.float32(), 4), pa.list_(pa.int32()),
                                   pa.list_(pa.int64()), pa.large_list(pa.float64()), pa.list_(pa.uint8())])
def test_supported_list_types(type_):
    data = pa.array([[1, 2, 3, 4], [5, 6, 7, 8], None, [9, 10, 11, 12]], type_)
    res = masker(ratio=0.5, fill=0).apply(pa.table({"x": data}), key_hashes(keys(4)))
    out = res.table.column("x")
    assert out.type.value_type == type_.value_type
    assert out.to_pylist()[2] is None and res.table.column("x.mask").to_pylist()[2] is None
    for o, x, m in zip(data.to_pylist(), out.to_pylist(), res.table.column("x.mask").to_pylist()):
        if o is None:
            continue
        assert sum(m) == 2
        assert x == [0 if mm else v for v, mm in zip(o, m)]
    assert res.masked.tolist() == [2, 2, 0, 2]


def test_keep_original():
    data = pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float64()))
    m = masker(ratio=1.0, keep_original=True)
    res = m.apply(pa.table({"x": data}), key_hashes(["a"]))
    assert res.table.column("x.orig").to_pylist() == [[1.0, 2.0, 3.0]]
    assert res.table.column("x").to_pylist() == [[0.0, 0.0, 0.0]]


@pytest.mark.parametrize("arr", [pa.array([["a", "b"]]), pa.array(["text"]), pa.array([1.0]),
                                 pa.array([[{"a": 1}]])])
def test_non_numeric_raises_input_error_naming_the_key(arr):
    with pytest.raises(InputError, match=r"^masks\.2\.field: column 'x' is "):
        masker(index=2).apply(pa.table({"x": arr}), key_hashes(["a"]))


def test_missing_column_names_the_key():
    with pytest.raises(InputError, match=r"masks\.0\.field: the input has no column 'x'; columns are: y"):
        masker().apply(pa.table({"y": [[1.0]]}), key_hashes(["a"]))


def test_same_key_same_mask_other_seed_other_mask():
    row = [1.0] * 300
    table = pa.table({"x": pa.array([row, row], pa.list_(pa.float64()))})
    a = masker(seed=0).apply(table, key_hashes(["k", "k"])).table.column("x.mask").to_pylist()
    assert a[0] == a[1]
    b = masker(seed=1).apply(table, key_hashes(["k", "k"])).table.column("x.mask").to_pylist()
    assert b[0] != a[0]
    c = masker(seed=0).apply(table, key_hashes(["j", "k"])).table.column("x.mask").to_pylist()
    assert c[0] != a[0] and c[1] == a[1]


@pytest.mark.parametrize("sampling", ["exact", "bernoulli"])
@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.one_of(st.none(), st.lists(st.floats(-1e6, 1e6), max_size=30)), min_size=1, max_size=25),
       cuts=st.lists(st.integers(0, 25), max_size=5), seed=st.integers(0, 2**32))
def test_batch_split_invariance(sampling, data, cuts, seed):
    ks = keys(len(data), "s")
    kh = key_hashes(ks)
    table = pa.table({"x": pa.array(data, pa.list_(pa.float64()))})
    m = masker(seed=seed, sampling=sampling, ratio=0.4)
    whole = m.apply(table, kh)
    bounds = [0] + sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    parts = [m.apply(table.slice(a, b - a), kh[a:b]) for a, b in zip(bounds, bounds[1:])]
    for col in ("x", "x.mask"):
        assert sum((p.table.column(col).to_pylist() for p in parts), []) == whole.table.column(col).to_pylist()
    assert np.concatenate([p.masked for p in parts]).tolist() == whole.masked.tolist()
