"""Build the small WordPiece tokenizer shipped in pipelines/assets/tokenizer.json: DEMO ONLY.

Trained locally on generated demo text before privacy masking (nothing downloaded), 2,000 tokens:
on real text it maps several percent of tokens to ``[UNK]`` (docs/training.md measures it), and
even on the demo output, since ``<``, ``>`` and ``_`` of the privacy placeholders are not in it.
For your data, train one on the input *after* privacy masking, placeholders kept whole:

    maskpipe tokenizer train --input pipelines/demo.yaml --vocab-size 8000 --out my-tokenizer.json

Rerun this script only to change the demo vocabulary:

    python scripts/build_tokenizer.py --out pipelines/assets/tokenizer.json

``--chat`` writes the chat variant used by the SFT pipelines instead: the same vocabulary plus the
ChatML special tokens ``<|im_start|>`` (2000), ``<|im_end|>`` (2001) and ``<|endoftext|>`` (2002):

    python scripts/build_tokenizer.py --chat --out pipelines/assets/chat_tokenizer.json
"""
from __future__ import annotations

import argparse
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__)))

from gen_demo import row  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="pipelines/assets/tokenizer.json")
    ap.add_argument("--vocab", type=int, default=2000)
    ap.add_argument("--chat", action="store_true", help="add ChatML special tokens to the bundled tokenizer")
    a = ap.parse_args()
    if a.chat:
        from tokenizers import AddedToken

        base = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines", "assets",
                            "tokenizer.json")
        tok = Tokenizer.from_file(base)
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>")])
        tok.save(a.out)
        print(f"wrote {a.out} ({tok.get_vocab_size()} tokens)")
        return
    r = random.Random(1234)
    texts = []
    for i in range(20000):
        rec = row(r, i)
        texts += [rec["body"], rec["subject"]]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=a.vocab, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    tok.save(a.out)
    print(f"wrote {a.out} ({tok.get_vocab_size()} tokens)")


if __name__ == "__main__":
    main()
