"""Collate helpers: fixed lengths (pad_to, pad_to_multiple_of), SFT pairs, the manifest's pad id."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from maskpipe import StreamError, collate_mlm, collate_sft, pad_collate, stream
from tests.streaming.test_stream import write_output


def pair(prefix: str, n: int, start: int = 5) -> dict:
    ids = np.arange(start, start + n, dtype=np.int32)
    return {f"{prefix}.input_ids.npy": ids, f"{prefix}.labels.npy": np.where(ids % 2 == 0, ids, -100).astype(np.int32)}


def test_pad_to_fixes_the_shape_and_cuts_longer_samples():
    batch = collate_mlm([pair("body", 3), pair("body", 7)], pad_id=9, pad_to=5)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 9, 9], [5, 6, 7, 8, 9]]
    assert batch["labels"].tolist() == [[-100, 6, -100, -100, -100], [-100, 6, -100, 8, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert tuple(collate_mlm([pair("body", 1)], pad_to=5)["input_ids"].shape) == (1, 5)


def test_pad_to_multiple_of_rounds_up():
    assert collate_mlm([pair("body", 5)], pad_to_multiple_of=4)["input_ids"].shape[1] == 8
    assert collate_mlm([pair("body", 8)], pad_to_multiple_of=4)["input_ids"].shape[1] == 8
    out = pad_collate([{**pair("body", 3), "f.npy": np.ones(3, np.float32)},
                       {**pair("body", 3), "f.npy": np.ones(3, np.float32)}], pad_to_multiple_of=4)
    assert tuple(out["body.input_ids.npy"].shape) == (2, 4) and tuple(out["f.npy"].shape) == (2, 3)
    assert out["body.attention_mask"].tolist() == [[1, 1, 1, 0]] * 2


@pytest.mark.parametrize("kw, msg", [({"pad_to": 4, "pad_to_multiple_of": 2}, "not both"),
                                     ({"pad_to": 0}, "pad_to must be a positive int"),
                                     ({"pad_to": 4, "max_length": 3}, "disagree")])
def test_bad_lengths_are_refused(kw, msg):
    with pytest.raises(StreamError, match=msg):
        collate_mlm([pair("body", 3)], **kw)


def test_sft_pairs_pad_labels_with_minus_100():
    b = collate_sft([pair("sft", 2), pair("sft", 4)], pad_id=0)
    assert b["labels"].tolist() == [[-100, 6, -100, -100], [-100, 6, -100, 8]]
    assert b["input_ids"].tolist() == [[5, 6, 0, 0], [5, 6, 7, 8]]
    with pytest.raises(StreamError, match="no array 'chat.input_ids.npy'"):
        collate_sft([pair("sft", 2)], name="chat")


def test_collator_takes_the_pad_id_from_the_manifest(tmp_path):
    write_output(tmp_path, [[(f"k{i}", pair("body", 2 + i)) for i in range(3)]])
    m = json.loads((tmp_path / "manifest.json").read_text())
    ds = stream(tmp_path)
    with pytest.raises(StreamError, match="no pad id in the manifest for field 'body'.*pass pad_id="):
        ds.collator("mlm", field="body")
    m["tokenizers"] = [{"step": 0, "field": "body", "special_ids": {"pad": 1}}]
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    ds = stream(tmp_path, shuffle=False)
    collate = pickle.loads(pickle.dumps(ds.collator("mlm", field="body", pad_to=6)))   # goes to workers
    batch = collate(list(ds))
    assert batch["input_ids"].tolist()[0] == [5, 6, 1, 1, 1, 1]          # RoBERTa-style pad 1, not 0
    assert ds.collator("mlm", pad_id=7)(list(ds))["input_ids"].tolist()[0][-1] == 7
    with pytest.raises(StreamError, match="kind must be one of"):
        ds.collator("clm")
