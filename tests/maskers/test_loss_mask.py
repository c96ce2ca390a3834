"""loss_mask: SFT labels checked against transformers' apply_chat_template (the oracle), against
the trained text itself, truncation, bad input, padding, determinism."""
from __future__ import annotations

import functools
import json
import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from maskpipe.errors import InputError
from maskpipe.maskers.chat_templates import BUILTIN
from maskpipe.maskers.loss_mask import LossMaskConfig, LossMaskMasker
from tests.maskers.maskutil import apply, assert_split_invariant

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT_TOK = os.path.join(ROOT, "pipelines", "assets", "chat_tokenizer.json")
HF_CONFIG = os.path.join(ROOT, "pipelines", "assets", "chat", "tokenizer_config.json")
HF_TEMPLATE = json.load(open(HF_CONFIG))["chat_template"]


def masker(tokenizer=CHAT_TOK, **kw) -> LossMaskMasker:
    kw.setdefault("messages", "m") if "prompt" not in kw else None
    return LossMaskMasker(LossMaskConfig(kind="loss_mask", tokenizer=tokenizer, **kw), 0, 0)


@functools.lru_cache(maxsize=None)
def cached_masker(template: str, train_on: tuple = ("assistant",), eos: str | None = None,
                  tokenizer: str = CHAT_TOK) -> LossMaskMasker:
    tmpl = {"path": HF_CONFIG} if template == "hf" else template
    return masker(tokenizer=tokenizer, template=tmpl, train_on=list(train_on), eos_token=eos)


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory) -> dict[str, str]:
    """The bundled WordPiece chat tokenizer (whitespace is never a token) and a byte-level BPE
    (whitespace is part of tokens, so span edges fall inside tokens)."""
    return {"wordpiece": CHAT_TOK, "bytelevel": byte_level_tokenizer(tmp_path_factory.mktemp("bpe"))}


@functools.lru_cache(maxsize=None)
def hf_tokenizer(path: str = CHAT_TOK):
    transformers = pytest.importorskip("transformers")
    return transformers.PreTrainedTokenizerFast(tokenizer_file=path)


def outputs(res, i: int, name: str = "sft") -> tuple[list[int], list[int]]:
    return res.table.column(name + ".input_ids")[i].as_py(), res.table.column(name + ".labels")[i].as_py()


def oracle(conv, template: str, tokenizer: str = CHAT_TOK, **kw) -> tuple[list[int], list[int]] | None:
    """transformers' input ids and assistant mask, or None where the template raises."""
    import jinja2

    try:
        out = hf_tokenizer(tokenizer).apply_chat_template(conv, chat_template=template, tokenize=True, return_dict=True,
                                                 return_assistant_tokens_mask=True, **kw)
    except jinja2.TemplateError:
        return None
    return list(out["input_ids"]), list(out["assistant_masks"])


TEXT = st.lists(st.sampled_from(list("abcXYZ 019.,!?\n\t é中") + [" the ", "<|im_end|>", "[SEP]", "  "]),
                max_size=12).map("".join)
MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]), "content": TEXT})
CONV = st.lists(MESSAGE, min_size=1, max_size=6)


@pytest.mark.parametrize("tok", ["wordpiece", "bytelevel"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(convs=st.lists(CONV, min_size=1, max_size=4))
def test_hf_template_matches_transformers_assistant_mask(tokenizer_files, tok, convs):
    path = tokenizer_files[tok]
    res = apply(cached_masker("hf", tokenizer=path), pa.table({"m": pa.array(convs)}))
    for i, conv in enumerate(convs):
        ids, labels = outputs(res, i)
        if not any(m["content"].strip() for m in conv if m["role"] == "assistant"):
            # nothing to learn: a bad record, not a sample of markup only or all -100
            assert res.bad is not None and res.bad[i] and res.reasons[i] == "empty_response"
            continue
        want = oracle(conv, HF_TEMPLATE, path)
        if want is None:  # the template raised (a system turn after the first)
            assert res.reasons[i] == "template_error"
            continue
        want_ids, want_mask = want
        assert ids == want_ids
        assert [int(v != -100) for v in labels] == want_mask
        assert [v for v in labels if v != -100] == [t for t, m in zip(want_ids, want_mask) if m]


@pytest.mark.parametrize("tok", ["wordpiece", "bytelevel"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(conv=CONV, train_on=st.sampled_from([("assistant",), ("user", "assistant"), ("system",)]),
       name=st.sampled_from(["chatml", "plain"]))
def test_builtin_templates_match_transformers(tokenizer_files, tok, conv, train_on, name):
    path = tokenizer_files[tok]
    eos = "<|im_end|>" if name == "plain" else None
    res = apply(cached_masker(name, train_on, eos, path), pa.table({"m": pa.array([conv])}))
    ids, labels = outputs(res, 0)
    want_ids, want_mask = oracle(conv, BUILTIN[name], path, train_on=list(train_on), eos_token=eos)
    if not any(m["content"].strip() for m in conv if m["role"] in train_on):
        assert res.bad is not None and res.bad[0]
        return
    assert ids == want_ids and [int(v != -100) for v in labels] == want_mask


def byte_level_tokenizer(tmp_path) -> str:
    """A small byte-level BPE (decode gives back the exact text), with the ChatML tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["How do I reset my password? Open the settings page and choose reset.",
              "Sure, here it is: done. Thanks!", "hello there, general kenobi"] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<|im_start|>", "<|im_end|>")])
    path = str(tmp_path / "bpe.json")
    tok.save(path)
    return path


def test_trained_tokens_decode_to_the_assistant_text(tmp_path):
    tok_path = byte_level_tokenizer(tmp_path)
    convs = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I reset my password?"},
              {"role": "assistant", "content": "Open the settings page and choose reset."},
              {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": " You're welcome \u00e9 "}],
             [{"role": "user", "content": "hello there"}, {"role": "assistant", "content": "general kenobi"}]]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tok_path)
    for template, end in (("chatml", "<|im_end|>"), ({"path": HF_CONFIG}, "<|im_end|>"), ("plain", "")):
        m = masker(tokenizer=tok_path, template=template)
        res = apply(m, pa.table({"m": pa.array(convs)}))
        for i, conv in enumerate(convs):
            ids, labels = outputs(res, i)
            lab = np.array(labels)
            # contiguous runs of trained tokens, one per assistant turn, decode to exactly its text
            edges = np.flatnonzero(np.diff(np.concatenate([[0], (lab != -100).astype(int), [0]])))
            runs = [ids[a:b] for a, b in zip(edges[::2], edges[1::2])]
            want = [c["content"] + end for c in conv if c["role"] == "assistant"]
            assert [tok.decode(r, skip_special_tokens=False) for r in runs] == want
            # and nothing else is trained: the rest decodes to the whole text minus those turns
            assert sum(len(r) for r in runs) == int((lab != -100).sum())


def test_offsets_give_exact_spans_with_wordpiece():
    conv = [{"role": "user", "content": "How do I reset it?"}, {"role": "assistant", "content": "Open the page."}]
    m = cached_masker("chatml")
    res = apply(m, pa.table({"m": pa.array([conv])}))
    text, spans = m.template.render(conv, ["assistant"])
    assert [text[a:b] for a, b in spans] == ["Open the page.<|im_end|>"]
    enc = m.tok.encode(text, add_special_tokens=False)
    ids, labels = outputs(res, 0)
    trained = [o for o, v in zip(enc.offsets, labels) if v != -100]
    assert text[trained[0][0]:trained[-1][1]] == "Open the page.<|im_end|>"
    assert labels[-1] == m.tok.token_to_id("<|im_end|>")         # the model learns to stop


UNTAGGED = ("{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|end|>\n"
            "{% endfor %}")
TAGGED = ("{{ bos_token }}{% for m in messages %}<|start|>{{ m['role'] }}\n"
          "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] | trim }}{% endgeneration %}"
          "{% else %}{{ m['content'] | trim }}{% endif %}<|end|>\n{% endfor %}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONV)
def test_template_without_generation_blocks_agrees_with_tagged_equivalent(conv):
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for name, tmpl in (("untagged", UNTAGGED), ("tagged", TAGGED)):
            paths[name] = os.path.join(d, name + ".json")
            json.dump({"chat_template": tmpl, "bos_token": "<s>"}, open(paths[name], "w"))
        a = apply(masker(template={"path": paths["untagged"]}), pa.table({"m": pa.array([conv])}))
        b = apply(masker(template={"path": paths["tagged"]}), pa.table({"m": pa.array([conv])}))
    assert a.reasons == b.reasons
    if not a.reasons[0]:
        assert outputs(a, 0) == outputs(b, 0)


def test_prompt_response_plain_and_truncation():
    prompt = "Some very long context. " * 20 + "Question?"
    t = pa.table({"p": [prompt, "short?", None, "x"], "r": ["The answer is here.", "Yes.", "a", ""]})
    m = masker(prompt="p", response="r", template="plain", eos_token="[SEP]", max_length=16)
    res = apply(m, t)
    np.testing.assert_array_equal(res.bad, [False, False, True, True])
    assert res.reasons == [None, None, "missing_prompt", "empty_response"]
    ids, labels = outputs(res, 0)
    assert len(ids) == 16
    full = m.tok.encode(prompt + "The answer is here.[SEP]", add_special_tokens=False).ids
    assert ids == full[-16:]                                     # left_prompt: the prompt lost its start
    resp = m.tok.encode("The answer is here.[SEP]", add_special_tokens=False).ids
    assert [v for v in labels if v != -100] == resp             # the whole response is kept and trained
    np.testing.assert_array_equal(res.counts["truncated"], [1, 0, 0, 0])
    np.testing.assert_array_equal(res.counts["response_cut"], [0, 0, 0, 0])
    np.testing.assert_array_equal(res.masked[:2], [len(resp), len([v for v in outputs(res, 1)[1] if v != -100])])
    np.testing.assert_array_equal(res.total[:2], [16, len(outputs(res, 1)[0])])


def test_long_response_is_cut_at_its_end_and_right_truncation_never_drops_it_silently():
    t = pa.table({"p": ["Why?"], "r": ["Because " * 40]})
    m = masker(prompt="p", response="r", template="plain", max_length=10)
    res = apply(m, t)
    ids, labels = outputs(res, 0)
    full = m.tok.encode("Why?" + "Because " * 40, add_special_tokens=False).ids
    first = len(m.tok.encode("Why?", add_special_tokens=False).ids)
    assert ids == full[first:first + 10] and all(v != -100 for v in labels)   # from the first response token
    assert res.counts["response_cut"][0] == 1 and res.counts["truncated"][0] == 1
    long_prompt = pa.table({"p": ["context " * 40], "r": ["answer"]})
    right = apply(masker(prompt="p", response="r", template="plain", max_length=10, truncation="right"), long_prompt)
    assert right.bad[0] and right.reasons == ["response_truncated"]
    left = apply(masker(prompt="p", response="r", template="plain", max_length=10), long_prompt)
    assert left.bad is None and [v for v in outputs(left, 0)[1] if v != -100] == m_ids("answer")


def m_ids(text: str) -> list[int]:
    return cached_masker("plain").tok.encode(text, add_special_tokens=False).ids


def test_bad_messages_get_reasons_and_json_text_column():
    rows = [json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]),
            json.dumps([{"content": "no role"}, {"role": "assistant", "content": "x"}]),
            json.dumps(["not an object"]),
            json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]),
            "not json", None, json.dumps([]),
            json.dumps([{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}])]
    res = apply(masker(template={"path": HF_CONFIG}), pa.table({"m": rows}))
    assert res.reasons == [None, "missing_role", "message_not_object", "empty_response", "invalid_messages",
                                    "invalid_messages", "invalid_messages", "template_error"]
    np.testing.assert_array_equal(res.bad, [False] + [True] * 7)
    assert res.reason_of(np.flatnonzero(res.bad)) == res.reasons[1:]
    assert res.table.column("sft.labels").to_pylist()[1:] == [None] * 7
    np.testing.assert_array_equal(res.masked[1:], 0)
    struct = pa.array([[{"role": "user", "content": "a"}, None], [{"role": None, "content": "b"}]])
    res = apply(masker(), pa.table({"m": struct}))
    assert res.reasons == ["message_not_object", "missing_role"]
    with pytest.raises(InputError, match="masks.0.messages"):
        apply(masker(), pa.table({"m": [1, 2]}))
    with pytest.raises(InputError, match="no column"):
        apply(masker(), pa.table({"x": ["a"]}))


def test_pad_to_max_length():
    t = pa.table({"p": ["Hi?", "Hello there?"], "r": ["Yes.", "General Kenobi."]})
    m = masker(prompt="p", response="r", template="plain", max_length=12, pad=True)
    res = apply(m, t)
    unpadded = apply(masker(prompt="p", response="r", template="plain", max_length=12), t)
    pad = m.tok.token_to_id("[PAD]")
    for i in range(2):
        ids, labels = outputs(res, i)
        att = res.table.column("sft.attention_mask")[i].as_py()
        u_ids, u_labels = outputs(unpadded, i)
        assert len(ids) == len(labels) == len(att) == 12
        n = len(u_ids)
        assert ids[:n] == u_ids and labels[:n] == u_labels and att == [1] * n + [0] * (12 - n)
        assert ids[n:] == [pad] * (12 - n) and labels[n:] == [-100] * (12 - n)
    np.testing.assert_array_equal(res.total, unpadded.total)     # padding is not counted


def test_split_invariant_and_types():
    convs = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"answer {i}"}] for i in range(9)]
    convs[4] = [{"role": "user", "content": "only a question"}]
    t = pa.table({"m": pa.array(convs)})
    m = cached_masker("chatml")
    assert_split_invariant(m, t, [1, 4, 5])
    res = apply(m, t)
    assert res.table.column("sft.input_ids").type == pa.list_(pa.int32())
    assert res.table.column("sft.labels").type == pa.list_(pa.int32())


def test_strftime_now_is_fixed(tmp_path):
    p = tmp_path / "tc.json"
    json.dump({"chat_template": "Today {{ strftime_now('%d %b %Y') }}\n{% for m in messages %}{% generation %}"
                                "{{ m['content'] }}{% endgeneration %}{% endfor %}"}, open(p, "w"))
    m = masker(template={"path": str(p)}, template_date="2023-07-04")
    text, spans = m.template.render([{"role": "assistant", "content": "x"}], ["assistant"])
    assert text == "Today 04 Jul 2023\nx" and spans == [(18, 19)]


def test_config_and_preflight_problems(tmp_path):
    with pytest.raises(ValidationError, match="either prompt and response"):
        LossMaskConfig(kind="loss_mask", tokenizer=CHAT_TOK)
    with pytest.raises(ValidationError, match="go together"):
        LossMaskConfig(kind="loss_mask", tokenizer=CHAT_TOK, prompt="p")
    with pytest.raises(ValidationError, match="pad: true needs max_length"):
        LossMaskConfig(kind="loss_mask", tokenizer=CHAT_TOK, messages="m", pad=True)
    pf = LossMaskMasker.preflight
    assert pf(LossMaskConfig(kind="loss_mask", tokenizer=CHAT_TOK, messages="m")) == []
    got = pf(LossMaskConfig(kind="loss_mask", tokenizer=CHAT_TOK, messages="m", template={"path": HF_CONFIG},
                            train_on=["user"]))
    assert len(got) == 1 and got[0].startswith("train_on:")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"chat_template": "{% for m in messages %}"}))
    got = pf(LossMaskConfig(kind="loss_mask", tokenizer=CHAT_TOK, messages="m", template={"path": str(bad)}))
    assert len(got) == 1 and "does not compile" in got[0]
    got = pf(LossMaskConfig(kind="loss_mask", tokenizer=str(tmp_path / "none.json"), messages="m",
                            template={"path": str(tmp_path / "missing.json")}))
    assert got[0].startswith("tokenizer: file not found") and got[1].startswith("template.path: file not found")
    (tmp_path / "nt.json").write_text("{}")
    got = pf(LossMaskConfig(kind="loss_mask", tokenizer=CHAT_TOK, messages="m", template={"path": str(tmp_path / "nt.json")}))
    assert "no chat_template" in got[0]


def test_template_that_cuts_a_trained_content_is_a_bad_record(tmp_path):
    p = tmp_path / "cut.json"
    json.dump({"chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'][:4] }}\n{% endfor %}"},
              open(p, "w"))
    conv = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "a long answer"}]
    res = apply(masker(template={"path": str(p)}), pa.table({"m": pa.array([conv])}))
    assert res.reasons == ["template_alters_content"]
    ok = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "ab"}]
    res = apply(masker(template={"path": str(p)}), pa.table({"m": pa.array([ok])}))
    ids, labels = outputs(res, 0)
    assert res.bad is None and [v for v in labels if v != -100] == cached_masker("plain").tok.encode(
        "ab", add_special_tokens=False).ids
