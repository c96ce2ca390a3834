"""Fine-tune a tiny transformer encoder with a masked-LM loss on a maskpipe output.

A worked example of the read side, not a recipe for a good model: it streams
``<field>.input_ids.npy`` / ``<field>.labels.npy`` with ``maskpipe.stream``, batches them with
``collate_mlm`` and trains a 2-layer, 64-wide encoder on the CPU. It prints the mean loss of the
first and last steps and exits 1 if the loss did not fall.

    make demo && python scripts/finetune_example.py --data out/demo --steps 300 --batch-size 16
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

try:
    from maskpipe import collate_mlm
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from maskpipe import collate_mlm
from maskpipe import stream

IGNORE = -100


class TinyEncoder(nn.Module):
    """Token + position embeddings, a small ``nn.TransformerEncoder`` and a vocabulary head.

    Args:
        vocab_size: Number of token ids the embedding and the head cover.
        max_length: Longest sequence (learned position embeddings).
        d_model, layers, heads: Size of the encoder.
    """

    def __init__(self, vocab_size: int, max_length: int, d_model: int = 64, layers: int = 2,
                 heads: int = 4):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(max_length, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model,
                                           dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, input_ids, attention_mask, labels):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.tokens(input_ids) + self.positions(positions)
        hidden = self.encoder(hidden, src_key_padding_mask=attention_mask == 0)
        # Project only the masked positions: the head is vocab-wide, the masked tokens ~15%.
        picked = labels != IGNORE
        logits = self.head(self.norm(hidden[picked]))
        return nn.functional.cross_entropy(logits, labels[picked])


def mlm_field(data: str) -> str:
    """The first field with both ``.input_ids.npy`` and ``.labels.npy`` members (from the
    manifest's ``fields`` or, if it has none, the first sample)."""
    ds = stream(data, shuffle=False)
    fields = set(ds.field_names or next(iter(ds), {}))
    found = sorted(f[: -len(".input_ids.npy")] for f in fields if f.endswith(".input_ids.npy")
                   and f[: -len(".input_ids.npy")] + ".labels.npy" in fields)
    if not found:
        raise SystemExit(f"{data}: no <field>.input_ids.npy + <field>.labels.npy members; does the "
                         "pipeline have an mlm step? (or pass --field)")
    return "body" if "body" in found else found[0]


def vocab_size(data: str, manifest: dict, field: str, scan: int) -> int:
    """From the manifest's tokenizer facts when it has them, else one more than the largest id in
    the first samples (outputs of token-id input, or written before maskpipe recorded them)."""
    for tok in manifest.get("tokenizers") or []:
        if tok.get("field") == field and isinstance(tok.get("vocab_size"), int):
            return tok["vocab_size"]
    names = [f"{field}.input_ids.npy", f"{field}.labels.npy"]
    largest = 0
    for i, sample in enumerate(stream(data, shuffle=False, fields=names)):
        if i >= scan:
            break
        largest = max([largest] + [int(sample[n].max()) for n in names if sample[n].size])
    return largest + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="out/demo", help="maskpipe output folder or manifest")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--field", default=None, help="masked text field (default: from manifest)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens kept per sample")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scan", type=int, default=5000, help="samples scanned for the vocab size")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # tiny weights turn denormal after a few hundred steps: 10x slower on CPU
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    field = args.field or mlm_field(args.data)
    vocab = vocab_size(args.data, stream(args.data, shuffle=False).manifest, field, args.scan)
    ds = stream(args.data, shuffle=True, seed=args.seed,
                fields=[f"{field}.input_ids.npy", f"{field}.labels.npy"])
    has_pad = any(t.get("field") == field for t in ds.manifest.get("tokenizers") or [])
    collate = (ds.collator("mlm", field=field, max_length=args.max_length) if has_pad   # pad id from the manifest
               else functools.partial(collate_mlm, field=field, max_length=args.max_length))
    loader = ds.loader(batch_size=args.batch_size, num_workers=args.num_workers, collate_fn=collate)
    print(f"data={args.data} field={field} samples/epoch={len(ds)} vocab={vocab} "
          f"batches/epoch={len(loader)}")
    if len(loader) == 0:
        print("no samples to train on", file=sys.stderr)
        return 1

    model = TinyEncoder(vocab, args.max_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    losses: list[float] = []
    epoch = 0
    while len(losses) < args.steps:
        before = len(losses)
        loader.set_epoch(epoch)
        for batch in loader:
            # Ids past the scanned vocabulary (a sample beyond --scan) map to the last id.
            input_ids = batch["input_ids"].clamp(max=vocab - 1)
            labels = batch["labels"].masked_fill(batch["labels"] >= vocab, IGNORE)
            if not (labels != IGNORE).any():
                continue
            loss = model(input_ids, batch["attention_mask"], labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if len(losses) >= args.steps:
                break
        epoch += 1
        if len(losses) == before:
            print("an epoch had no masked tokens to learn from", file=sys.stderr)
            return 1

    window = max(1, min(20, len(losses) // 5))
    first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    print(f"steps={len(losses)} epochs={epoch} first{window}_loss={first:.4f} "
          f"last{window}_loss={last:.4f} seconds={time.perf_counter() - started:.1f}")
    if not last < first:
        print("loss did not fall", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
