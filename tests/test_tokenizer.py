"""``maskpipe tokenizer train / check`` and maskpipe/tokenizer.py: a tokenizer learnt after privacy
masking, placeholders kept whole, facts a trainer reads."""
from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer
from typer.testing import CliRunner

from maskpipe.cli import app
from maskpipe.tokenizer import placeholder_tokens, tokenizer_facts, train, unk_id, unk_share
from tests.helpers import write_yaml

CANARY = "zqxjkcanary"


def texts(n: int = 200) -> list[str]:
    return [f"ticket {i}: please reset the router, mail {CANARY}{i % 3}@corp.example or call back" for i in range(n)]


@pytest.fixture
def pipeline(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(pa.table({"id": [f"t{i}" for i in range(200)], "body": texts()}), tmp_path / "data" / "a.parquet")
    cfg = {"name": "tok", "input": {"path": str(tmp_path / "data"), "format": "parquet", "key": "id"},
           "privacy": {"scan": {"fields": ["body"], "entities": ["email"]}},
           "masks": [{"kind": "mlm", "field": "body", "mask_id": 4, "vocab_size": 100}],
           "output": {"path": str(tmp_path / "out")}}
    return write_yaml(tmp_path / "p.yaml", cfg)


def test_train_reads_the_pipeline_input_after_privacy(pipeline, tmp_path):
    out = tmp_path / "tok.json"
    res = CliRunner().invoke(app, ["tokenizer", "train", "--input", pipeline, "--vocab-size", "300",
                                   "--field", "body", "--out", str(out)])
    assert res.exit_code == 0, res.output
    tok = Tokenizer.from_file(str(out))
    vocab = tok.get_vocab()
    assert not any("zqxjk" in t or "canary" in t for t in vocab)     # the address never reached training
    assert tok.encode("mail <EMAIL> back").tokens == ["[CLS]", "mail", "<EMAIL>", "back", "[SEP]"]
    # a raw-text tokenizer (no privacy) learns the address: the check above can fail
    raw = train(texts(), 300)
    assert any("zqxjk" in t for t in raw.get_vocab())


def test_placeholders_and_pseudonyms_stay_whole():
    tok = train(["see <EMAIL> and <PHONE_0123456789abcdef0123456789abcdef> or <REDACTED> today"] * 50, 200)
    enc = tok.encode("see <EMAIL> or <PHONE_0123456789abcdef0123456789abcdef> and <REDACTED>")
    assert "<EMAIL>" in enc.tokens and "<PHONE_" in enc.tokens and "<REDACTED>" in enc.tokens
    assert tok.token_to_id("[UNK]") not in enc.ids
    assert {"<EMAIL>", "<EMAIL_", "<PERSON>", "<REDACTED>"} <= set(placeholder_tokens())
    specials = {t.content for t in tok.get_added_tokens_decoder().values() if t.special}
    assert set(placeholder_tokens()) <= specials


def test_bpe_has_no_unk_and_roberta_ids(tmp_path):
    tok = train(texts(50), 400, model="bpe")
    assert unk_id(tok) is None and unk_share(tok, ["ünïcödé ✓ text"]) == (0, len(tok.encode("ünïcödé ✓ text").ids))
    tok.save(str(tmp_path / "bpe.json"))
    facts = tokenizer_facts(str(tmp_path / "bpe.json"))
    assert facts["special_ids"]["pad"] == tok.token_to_id("<pad>") == 0
    assert facts["special_ids"]["cls"] == facts["special_ids"]["bos"] == tok.token_to_id("<s>")
    # the <unk> token exists (RoBERTa convention) although byte-level BPE never produces it
    assert facts["special_ids"]["mask"] == tok.token_to_id("<mask>") and facts["special_ids"]["unk"] == 1


def test_check_reports_the_unk_share(tmp_path, tokenizer_path):
    doc = tmp_path / "docs.txt"
    doc.write_text("hello world\n\nx = f(*args) -> `ok`\n")
    res = CliRunner().invoke(app, ["tokenizer", "check", "--tokenizer", tokenizer_path, "--input", str(doc)])
    assert res.exit_code == 0, res.output
    tok = Tokenizer.from_file(tokenizer_path)
    encs = tok.encode_batch(["hello world", "x = f(*args) -> `ok`"])
    unk = sum(e.ids.count(1) for e in encs)
    total = sum(len(e.ids) for e in encs)
    assert unk > 0 and f"{unk} [UNK] of {total} tokens ({100 * unk / total:.2f}%)" in res.output


def test_bad_input_is_one_line(tmp_path):
    res = CliRunner().invoke(app, ["tokenizer", "train", "--input", str(tmp_path / "nope"), "--vocab-size", "300"])
    assert res.exit_code != 0 and "is not a pipeline YAML, a maskpipe output folder or a text file" in res.output
    assert len(res.output.strip().splitlines()) == 1
