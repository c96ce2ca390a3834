"""Training runs the trainer tests start, in this process or under ``torchrun`` (not a test module).

    python trainer_worker.py hf  DATA OUT     # the Hugging Face Trainer recipe of docs/training.md
    python trainer_worker.py ddp DATA OUT     # plain DDP: StreamLoader, 2 workers, an all-reduce per step

Each rank writes ``OUT/rank<r>.json`` with the sample keys of every batch it trained on, in order.
The ``hf`` recipe below is copied verbatim into docs/training.md (tests/streaming/test_trainers.py
checks that); the instrumentation around it only records which keys reach the model.
"""
from __future__ import annotations

import json
import os
import sys

import torch


def _record_keys(out: str, rank: int):
    """Make every batch carry its samples' key numbers and the model record them (forward)."""
    import transformers

    import maskpipe.streaming.dataset as dataset

    seen: list[list[int]] = []
    plain_collator, plain_forward = dataset.StreamDataset.collator, transformers.BertForMaskedLM.forward

    def collator(self, *args, **kwargs):
        collate = plain_collator(self, *args, **kwargs)
        return lambda samples: {**collate(samples),
                                "sample_id": torch.tensor([int(s["__key__"].rsplit("-", 1)[1]) for s in samples])}

    def forward(self, *args, sample_id=None, **kwargs):
        seen.append(sample_id.tolist())
        return plain_forward(self, *args, **kwargs)

    dataset.StreamDataset.collator = collator
    transformers.BertForMaskedLM.forward = forward
    return lambda: _write(out, rank, seen)


def _write(out: str, rank: int, batches: list[list[int]]) -> None:
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "batches": batches}, f)


def hf(DATA: str, OUT: str) -> None:
    done = _record_keys(OUT, int(os.environ.get("RANK", 0)))
    # --- recipe: Hugging Face Trainer (docs/training.md) ---
    import maskpipe
    from transformers import BertConfig, BertForMaskedLM, Trainer, TrainingArguments

    # rank=0, world_size=1: accelerate reads on rank 0 and sends every rank its part of each batch
    ds = maskpipe.stream(DATA, rank=0, world_size=1, seed=0)
    tokenizer = ds.manifest["tokenizers"][0]             # vocab size and special ids of the mlm step
    collate = ds.collator("mlm", field="body", pad_to=32)   # pad id from the manifest; one shape per batch
    model = BertForMaskedLM(BertConfig(vocab_size=tokenizer["vocab_size"], hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                                       pad_token_id=tokenizer["special_ids"]["pad"]))
    args = TrainingArguments(OUT, per_device_train_batch_size=4, num_train_epochs=2, learning_rate=1e-3,
                             remove_unused_columns=False,   # else the Trainer drops every maskpipe field
                             dataloader_num_workers=0, use_cpu=True, report_to=[], save_strategy="no",
                             logging_steps=5, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=ds, data_collator=collate).train()
    # --- end of recipe ---
    done()


def ddp(DATA: str, OUT: str) -> None:
    import torch.distributed as dist

    import maskpipe

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    # --- recipe: plain DDP (docs/training.md) ---
    ds = maskpipe.stream(DATA, seed=0)                      # rank and world_size from torch.distributed
    loader = ds.loader(batch_size=3, num_workers=2, collate_fn=ds.collator("mlm", field="body"))
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Embedding(64, 4))
    optim = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(2):
        loader.set_epoch(epoch)
        for batch in loader:                                # the same number of batches on every rank
            loss = model(batch["input_ids"]).pow(2).mean()
            loss.backward()                                 # DDP all-reduces the gradients here
            optim.step(); optim.zero_grad()
    # --- end of recipe ---
    seen = []
    for epoch in range(2):                                  # the keys each rank trained on, per epoch
        loader.set_epoch(epoch)
        for batch in ds.loader(batch_size=3, num_workers=2, collate_fn=lambda s: [x["__key__"] for x in s]):
            total = torch.tensor([len(batch)])
            dist.all_reduce(total)                          # a collective per step: deadlocks if uneven
            seen.append([int(k.rsplit("-", 1)[1]) for k in batch])
    _write(OUT, rank, seen)
    dist.destroy_process_group()


if __name__ == "__main__":
    {"hf": hf, "ddp": ddp}[sys.argv[1]](sys.argv[2], sys.argv[3])
