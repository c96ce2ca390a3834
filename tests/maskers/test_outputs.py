"""``MaskerConfig.outputs()``: every registered kind declares exactly the columns its ``apply``
adds (names and member extensions), for the config variants that add or change members, and two
steps that declare one column are refused in decide, before any Ray work."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pytest
import yaml

from maskpipe.errors import InputError
from maskpipe.io.tar.writer import member_ext
from maskpipe.maskers import MASKERS
from tests.maskers.imgutil import numeric_table, png_table, random_images
from tests.maskers.maskutil import TOKENIZER, apply
from tests.maskers.test_waveform import wav

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT_TOK = os.path.join(ROOT, "pipelines", "assets", "chat_tokenizer.json")


def _ids() -> pa.Table:
    return pa.table({"ids": pa.array([[5, 6, 7, 8, 9, 10], [11, 12, 13], [14, 15, 16, 17]], pa.list_(pa.int64()))})


def _text() -> pa.Table:
    return pa.table({"body": ["the quick brown fox jumps over the lazy dog", "hello world again", "a b c d e f"]})


def _features() -> pa.Table:
    return pa.table({"x": pa.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0], [7.0, 8.0, 9.0]], pa.list_(pa.float32()))})


def _pngs() -> pa.Table:
    return png_table(random_images(3, sizes=((16, 16), (12, 20))))


def _pixels() -> pa.Table:
    return numeric_table(3, 8, 8, 3)[1]


def _spec_flat() -> pa.Table:
    g = np.random.default_rng(0)
    return pa.table({"mel": pa.FixedSizeListArray.from_arrays(pa.array(g.normal(size=3 * 4 * 10).astype(np.float32)), 40)})


def _spec_nested() -> pa.Table:
    g = np.random.default_rng(1)
    return pa.table({"mel": [[list(g.normal(size=10)) for _ in range(4)] for _ in range(3)]})


def _wavs() -> pa.Table:
    g = np.random.default_rng(2)
    return pa.table({"wav": pa.array([wav(g.integers(-3000, 3000, size=400).astype("<i2")) for _ in range(3)], pa.binary())})


def _clips() -> pa.Table:
    g = np.random.default_rng(3)
    return pa.table({"audio": pa.array([list(g.normal(size=300).astype(np.float32)) for _ in range(3)],
                                       pa.list_(pa.float32()))})


def _table() -> pa.Table:
    return pa.table({"age": [31, 42, 57], "income": [1.5, 2.5, 3.5], "city": ["a", "b", "c"]})


def _pair() -> pa.Table:
    return pa.table({"prompt": ["What is two plus two?", "Name a colour."], "response": ["Four.", "Blue."]})


def _chat() -> pa.Table:
    return pa.table({"m": pa.array([[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]] * 2)})


IDS = {"mask_id": 3, "vocab_size": 100}
IMG_NUM = {"field": "px", "shape": [8, 8, 3]}

# kind -> (config keys, input) variants: every option that adds or renames a member, on each input
# type whose members differ
CASES: dict[str, list[tuple[dict, callable]]] = {
    "mlm": [({"field": "ids", **IDS}, _ids), ({"field": "body", "tokenizer": TOKENIZER}, _text)],
    "whole_word": [({"field": "body", "tokenizer": TOKENIZER}, _text)],
    "span": [({"field": "ids", "sentinel_start_id": 199}, _ids),
             ({"field": "body", "tokenizer": TOKENIZER, "sentinel_start_id": 99999}, _text)],
    "features": [({"field": "x", "ratio": 0.5}, _features),
                 ({"field": "x", "ratio": 0.5, "keep_original": True}, _features)],
    "spectrogram": [({"field": "mel", "shape": [4, 10]}, _spec_flat),
                    ({"field": "mel", "shape": [4, 10], "keep_original": True}, _spec_flat),
                    ({"field": "mel", "keep_original": True}, _spec_nested)],
    "image_patch": [({"field": "png", "patch_size": 4}, _pngs), ({**IMG_NUM, "patch_size": 4}, _pixels)],
    "image_block": [({"field": "png", "patch_size": 4, "min_block": 2}, _pngs),
                    ({"field": "png", "patch_size": 4, "min_block": 2, "shape": [16, 16, 3]}, _pngs),
                    ({"field": "png", "patch_size": 4, "min_block": 2, "masked": "npy"}, _pngs),
                    ({"field": "png", "patch_size": 4, "min_block": 2, "masked": "none"}, _pngs),
                    ({**IMG_NUM, "patch_size": 4, "min_block": 2}, _pixels),
                    ({**IMG_NUM, "patch_size": 4, "min_block": 2, "masked": "png"}, _pixels)],
    "image_erase": [({"field": "png"}, _pngs), ({"field": "png", "masked": "npy"}, _pngs),
                    ({"field": "png", "masked": "none"}, _pngs), ({**IMG_NUM, "fill": "mean"}, _pixels),
                    ({**IMG_NUM, "masked": "png"}, _pixels)],
    "waveform": [({"field": "audio", "max_width": 50}, _clips),
                 ({"field": "audio", "max_width": 50, "keep_original": True}, _clips),
                 ({"field": "wav", "max_width": 50}, _wavs),
                 ({"field": "wav", "max_width": 50, "keep_original": True}, _wavs)],
    "tabular": [({"fields": ["age", "income", "city"], "ratio": 0.5}, _table),
                ({"fields": ["age", "city"], "ratio": 0.5, "name": "tab", "keep_original": True}, _table)],
    "loss_mask": [({"tokenizer": CHAT_TOK, "prompt": "prompt", "response": "response"}, _pair),
                  ({"tokenizer": CHAT_TOK, "name": "chat", "messages": "m", "max_length": 32, "pad": True}, _chat)],
}


def test_every_registered_kind_is_checked():
    assert set(CASES) == set(MASKERS)


def _written(kind: str, keys: dict, table: pa.Table) -> tuple[dict[str, str], dict[str, str] | None]:
    """(columns ``apply`` added with their member extensions, what the config declares)."""
    cfg = MASKERS[kind].Config(kind=kind, **keys)
    res = apply(MASKERS[kind](cfg, 0, 7), table)
    assert res.bad is None or not res.bad.all(), "the sample input must be valid"
    added = {n: member_ext(res.table.schema.field(n).type) for n in res.table.column_names
             if n not in table.column_names}
    seen = {n: member_ext(t) for n, t in zip(table.schema.names, table.schema.types)}
    return added, cfg.outputs(seen)


@pytest.mark.parametrize("kind,keys,make", [pytest.param(k, c, m, id=f"{k}-{i}") for k, cases in CASES.items()
                                             for i, (c, m) in enumerate(cases)])
def test_declared_outputs_are_the_columns_written(kind, keys, make):
    added, declared = _written(kind, keys, make())
    assert declared == added


def test_options_change_the_declared_members():
    """The variants above are not all alike: the options really add or rename members (so the
    equality above is checked on sets that differ)."""
    def out(kind, **keys):
        return set(MASKERS[kind].Config(kind=kind, **keys).outputs())

    assert out("features", field="x", ratio=0.5, keep_original=True) - out("features", field="x", ratio=0.5) == {"x.orig"}
    assert out("loss_mask", tokenizer=CHAT_TOK, messages="m", name="chat", pad=True, max_length=8) == {
        "chat.input_ids", "chat.labels", "chat.attention_mask"}
    assert "png.masked.png" in out("image_block", field="png")
    assert "px.masked" in out("image_block", field="px", shape=[8, 8, 3])
    wav = MASKERS["waveform"].Config(kind="waveform", field="wav", keep_original=True)
    assert wav.outputs({"wav": ""}) == {"wav.mask": "npy", "wav.orig.wav": ""}
    assert wav.outputs({"wav": "npy"}) == {"wav.mask": "npy", "wav.orig": "npy"}


# ------------------------------------------------------------------ the decide-time member check

def _pipeline(tmp_path, masks: list[dict]) -> str:
    import pyarrow.parquet as pq

    d = tmp_path / "in"
    d.mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "c"], "ids": _ids().column("ids"), "x": _features().column("x")}),
                   d / "a.parquet")
    cfg = {"name": "clash", "input": {"path": str(d), "format": "parquet", "key": "id"}, "masks": masks,
           "output": {"path": str(tmp_path / "out"), "shard_samples": 10},
           "execution": {"progress": "off"}}
    y = tmp_path / "p.yaml"
    y.write_text(yaml.safe_dump(cfg))
    return str(y)


def _run_cli(path: str):
    from typer.testing import CliRunner

    from maskpipe.cli import app

    return CliRunner().invoke(app, ["run", path])


def test_two_steps_writing_one_column_are_refused_before_any_ray_work(tmp_path, monkeypatch):
    import maskpipe.engine

    started = []
    monkeypatch.setattr(maskpipe.engine, "execute", lambda *a, **k: started.append(1))  # the Ray stage
    y = _pipeline(tmp_path, [{"kind": "mlm", "field": "ids", **IDS},
                             {"kind": "features", "field": "x", "ratio": 0.5},
                             {"kind": "mlm", "field": "ids", "ratio": 0.3, **IDS}])
    res = _run_cli(y)
    err = res.stderr.strip()
    assert res.exit_code == 3, res.output
    assert err == ("error: masks.2: the mlm step writes column 'ids.input_ids', which masks.0 (the mlm step) "
                   "writes too (the later would overwrite it); give one of them another field or name, or remove "
                   "one of the steps")
    assert started == []                       # refused in decide: execute (Ray) never ran
    assert not os.path.exists(tmp_path / "out" / "manifest.json")
    assert not any(n.endswith(".tar") for _, _, names in os.walk(tmp_path / "out") for n in names)


def test_a_step_writing_an_input_column_is_refused_naming_its_key(tmp_path):
    """The input has ``x``; a tabular step named ``x`` would write ``x.mask``, which features on
    ``x`` writes too: refused whichever comes second."""
    from maskpipe.config import load_config
    from maskpipe.process import check_members

    y = _pipeline(tmp_path, [{"kind": "features", "field": "x", "ratio": 0.5},
                             {"kind": "tabular", "fields": ["id2"], "ratio": 0.5, "name": "x"}])
    cfg = load_config(y)
    schema = pa.schema([("id", pa.string()), ("ids", pa.list_(pa.int64())), ("x", pa.list_(pa.float32())),
                        ("id2", pa.int64())])
    with pytest.raises(InputError, match=r"^masks\.1: the tabular step writes column 'x\.mask', which masks\.0 "
                                         r"\(the features step\) writes too"):
        check_members(cfg, schema)
    # one step alone is fine; the input's own ``x.mask`` column is refused as an overwrite
    one = cfg.model_copy(update={"masks": cfg.masks[:1]})
    check_members(one, schema)
    with pytest.raises(InputError, match=r"^masks\.0: the features step writes column 'x\.mask', which the input "
                                         r"already has"):
        check_members(one, schema.append(pa.field("x.mask", pa.string())))


# ------------------------------------------------------------------ docs/format.md's members table

# every option that adds a member, with the table's placeholders for field and name
DOC_KEYS: dict[str, list[dict]] = {
    "mlm": [{"field": "<field>", **IDS}], "whole_word": [{"field": "<field>", "tokenizer": TOKENIZER}],
    "span": [{"field": "<field>", "sentinel_start_id": 199}],
    "features": [{"field": "<field>", "ratio": 0.5, "keep_original": True}],
    "spectrogram": [{"field": "<field>", "shape": [4, 10], "keep_original": True}],
    "image_patch": [{"field": "<field>"}],
    "image_block": [{"field": "<field>", "masked": "png"}, {"field": "<field>", "masked": "npy"}],
    "image_erase": [{"field": "<field>", "masked": "png"}, {"field": "<field>", "masked": "npy"}],
    "waveform": [{"field": "<field>", "keep_original": True}],
    "tabular": [{"fields": ["a"], "ratio": 0.5, "name": "<name>", "keep_original": True}],
    "loss_mask": [{"tokenizer": CHAT_TOK, "messages": "m", "name": "<name>", "pad": True, "max_length": 8}],
}


def test_format_md_lists_every_declared_member():
    from maskpipe.io.tar.writer import member_suffix

    assert set(DOC_KEYS) == set(MASKERS)
    text = open(os.path.join(ROOT, "docs", "format.md"), encoding="utf-8").read()
    rows = {}
    for line in text.splitlines():
        cells = line.strip().split("|")
        if len(cells) > 3 and cells[1].strip().startswith("`"):
            for kind in cells[1].replace("`", "").split(","):
                rows[kind.strip()] = line
    for kind, variants in DOC_KEYS.items():
        assert kind in rows, f"format.md has no members row for {kind}"
        for keys in variants:
            for name, ext in MASKERS[kind].Config(kind=kind, **keys).outputs().items():
                assert f"`{member_suffix(name, ext)}`" in rows[kind], (kind, name)
