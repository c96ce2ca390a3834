"""Tokenizers for maskpipe: the facts a trainer needs, the ``[UNK]`` id, and training one on text
*after* privacy masking (``maskpipe tokenizer train``, docs/training.md "A tokenizer for your text").

The bundled ``pipelines/assets/tokenizer.json`` is a demo tokenizer (2,000 WordPiece tokens
learnt from generated tickets): on real text a large share of tokens becomes ``[UNK]``. Train
one on your own (masked) data and check the share in ``stats.json`` (``steps[i].unk_share``).

Example:
    >>> facts = tokenizer_facts("pipelines/assets/tokenizer.json")    # doctest: +SKIP
    >>> facts["vocab_size"], facts["special_ids"]["pad"]              # doctest: +SKIP
    (2000, 0)
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Iterable, Iterator, Sequence

from maskpipe.errors import InputError

# Special-token roles a trainer asks for, and the spellings of the usual vocabularies
# (BERT, RoBERTa/GPT-2 style, T5/SentencePiece style), looked up in this order.
ROLES: dict[str, tuple[str, ...]] = {
    "pad": ("[PAD]", "<pad>", "<|pad|>"),
    "unk": ("[UNK]", "<unk>", "<|unk|>"),
    "cls": ("[CLS]", "<s>", "<cls>"),
    "sep": ("[SEP]", "</s>", "<sep>"),
    "mask": ("[MASK]", "<mask>"),
    "bos": ("[BOS]", "<s>", "<|begin_of_text|>", "<|startoftext|>"),
    "eos": ("[EOS]", "</s>", "<|end_of_text|>", "<|endoftext|>"),
}
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BPE_SPECIALS = ("<pad>", "<unk>", "<s>", "</s>", "<mask>")


def placeholder_tokens() -> list[str]:
    """What maskpipe's privacy step writes into text, as tokens: every entity's placeholder
    (``<EMAIL>``), the start of its pseudonym (``<EMAIL_`` followed by 32 hex digits and ``>``)
    and ``<REDACTED>``. Kept whole (special tokens) so that a tokenizer never splits them into
    ``<``, ``EMA``, ``##IL``, ``>`` or maps them to ``[UNK]``."""
    from maskpipe.privacy.detectors import NER_ENTITIES, RULE_ENTITIES
    from maskpipe.privacy.fields import REDACTED

    entities = [e.upper() for e in (*RULE_ENTITIES, *NER_ENTITIES)]
    return [f"<{e}>" for e in entities] + [f"<{e}_" for e in entities] + [REDACTED]


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unk_id(tok) -> int | None:
    """The id the tokenizer's model gives unknown text (None for byte-level BPE: it has none)."""
    name = getattr(tok.model, "unk_token", None)
    if name:
        return tok.token_to_id(name)
    unk = json.loads(tok.to_str()).get("model", {}).get("unk_id")   # Unigram keeps an id
    return int(unk) if isinstance(unk, int) else None


def tokenizer_facts(path: str, mask_token: str | None = None) -> dict:
    """Vocabulary size, special ids by role, every special token and the file's sha256.

    Args:
        path: a local ``tokenizer.json``.
        mask_token: the step's ``mask_token`` (looked up first for the ``mask`` role).
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    specials = {t.content: int(i) for i, t in tok.get_added_tokens_decoder().items() if t.special}
    ids: dict[str, int | None] = {}
    for role, spellings in ROLES.items():
        tries = ((mask_token,) if role == "mask" and mask_token else ()) + spellings
        ids[role] = next((tok.token_to_id(s) for s in tries if tok.token_to_id(s) is not None), None)
    ids["unk"] = unk_id(tok) if unk_id(tok) is not None else ids["unk"]
    return {"file": os.path.basename(path), "sha256": file_sha256(path),
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "special_ids": ids, "special_tokens": dict(sorted(specials.items(), key=lambda kv: kv[1]))}


# ---------------------------------------------------------------------------------- training

def train(texts: Iterable[str], vocab_size: int, model: str = "wordpiece", lowercase: bool = False):
    """A ``tokenizers.Tokenizer`` learnt from ``texts`` with maskpipe's placeholders kept whole.

    Args:
        texts: documents (already privacy-masked: see :func:`pipeline_texts`).
        vocab_size: target vocabulary size, special tokens included.
        model: ``wordpiece`` (BERT style, ``[CLS] ... [SEP]``, works with ``whole_word``) or
            ``bpe`` (byte-level, RoBERTa style ``<s> ... </s>``: no text is ever unknown).
        lowercase: lowercase and strip accents first (BERT uncased); WordPiece only.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if model == "wordpiece":
        specials = [*BERT_SPECIALS, *placeholder_tokens()]
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase or None)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
        cls, sep = "[CLS]", "[SEP]"
    elif model == "bpe":
        specials = [*BPE_SPECIALS, *placeholder_tokens()]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        cls, sep = "<s>", "</s>"
    else:
        raise InputError(f"--model: unknown tokenizer model {model!r}; use wordpiece or bpe")
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return tok


def unk_share(tok, texts: Iterable[str], batch: int = 1000) -> tuple[int, int]:
    """(``[UNK]`` tokens, all tokens) of ``texts`` under ``tok`` (specials like ``[CLS]`` count)."""
    import numpy as np

    unk = unk_id(tok)
    n_unk = n_all = 0
    from maskpipe.streaming.order import batches

    for chunk in batches(texts, batch, drop_last=False):
        for enc in tok.encode_batch(chunk):
            ids = np.asarray(enc.ids)
            n_all += len(ids)
            n_unk += int((ids == unk).sum()) if unk is not None else 0
    return n_unk, n_all


# ------------------------------------------------------------------------------------ inputs

def input_texts(source: str, fields: Sequence[str] = (), limit: int | None = None) -> Iterator[str]:
    """Documents from a pipeline YAML (its input, privacy applied), a maskpipe output (its ``.txt``
    members) or text files (one document per line). At most ``limit`` documents."""
    if source.endswith((".yaml", ".yml")):
        texts = pipeline_texts(source, fields)
    elif os.path.isdir(source) and os.path.isfile(os.path.join(source, "manifest.json")) or source.endswith("manifest.json"):
        texts = output_texts(source, fields)
    elif os.path.isfile(source):
        texts = _lines(source)
    else:
        raise InputError(f"--input: {source} is not a pipeline YAML, a maskpipe output folder or a text file")
    for i, text in enumerate(texts):
        if limit is not None and i >= limit:
            return
        yield text


def _lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n")


def pipeline_texts(path: str, fields: Sequence[str] = ()) -> Iterator[str]:
    """The text columns of a pipeline's input *after* its privacy step, read in this process.

    Args:
        path: the pipeline YAML.
        fields: columns to take (default: the ``field`` of every mask step with a tokenizer).
    """
    import pyarrow.compute as pc

    from maskpipe.config import load_config
    from maskpipe.io.internal import INTERNAL
    from maskpipe.io.plan import plan_input
    from maskpipe.io.read import read_units
    from maskpipe.runner.decide import locate_input

    cfg = load_config(path)
    fields = list(fields) or sorted({m.target().field for m in cfg.masks if getattr(m, "tokenizer", None)})
    if not fields:
        raise InputError(f"{path}: no mask step has a tokenizer; name the text columns with --field")
    fmt, files = locate_input(cfg)
    plan = plan_input(cfg.input.path, fmt, cfg.output.shard_samples, cfg.execution.s3_endpoint, "skip",
                      cfg.input.csv_delimiter, files=files, key=cfg.input.key)
    privacy = None
    if cfg.privacy is not None:
        from maskpipe.privacy import PrivacyStep

        privacy = PrivacyStep(cfg.privacy)
    for table in read_units(plan.read_spec(), plan.units):
        table = table.filter(pc.is_null(table.column("__bad")))
        user = table.drop_columns([c for c in INTERNAL if c in table.column_names])
        if privacy is not None:
            user, _counts = privacy.apply(user)
        for name in fields:
            if name not in user.column_names:
                raise InputError(f"--field: the pipeline's input (after privacy) has no text column {name!r}")
            for text in user.column(name).to_pylist():
                if isinstance(text, str) and text:
                    yield text


def output_texts(source: str, fields: Sequence[str] = ()) -> Iterator[str]:
    """``.txt`` members of a maskpipe output (written after privacy masking), in manifest order."""
    from maskpipe.streaming import stream

    ds = stream(source, shuffle=False, rank=0, world_size=1)
    known = ds.field_names or []
    names = list(fields) or [f for f in known if f.endswith(".txt") and not f.startswith("__")]
    if not names:
        raise InputError(f"--field: {source} lists no .txt fields; name them with --field (e.g. body.txt)")
    ds = stream(source, shuffle=False, rank=0, world_size=1, fields=names)
    for sample in ds:
        for name in names:
            if isinstance(sample.get(name), str) and sample[name]:
                yield sample[name]
