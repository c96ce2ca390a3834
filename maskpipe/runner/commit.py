"""Stage 3 of a run, on the driver: turn what the write tasks published into a finished output.

In order: shards split across write tasks are joined from their parts; every shard's tally is
added (records the decision reused plus records the write tasks returned: none is read again);
keys are checked unique (:mod:`~maskpipe.runner.keycheck`); the bad-record share is checked;
then ``stats.json``, ``quarantine.jsonl``, ``masks.json``, ``wids.json`` and, last, ``manifest.json`` are published.

The manifest's content is :func:`build_manifest` (the one place that says what a manifest holds);
:func:`write_manifest` publishes it.
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

from maskpipe import __version__
from maskpipe.errors import BadRecordsError, OutputError
from maskpipe.io.store import META, OutputStore
from maskpipe.maskers.record import MASKS_NAME, masks_record
from maskpipe.runner.decide import Decision
from maskpipe.runner.keycheck import check_unique_keys
from maskpipe.sink import assemble, shard_name
from maskpipe.stats import Tally, stats_json


@dataclass
class RunResult:
    """What a run published (or found already published)."""

    output: str
    shards: int
    samples_in: int
    samples_out: int
    bad: int
    skipped_shards: int
    noop: bool
    seconds: float
    stats: dict


def collect_records(d: Decision, returns: list[dict]) -> list[dict]:
    """Every shard's record, in shard order: reused ones, published ones, and the ones joined
    here from parts. Raises OutputError when a shard is missing."""
    store, spec = d.store, d.spec
    records: dict[int, dict] = dict(d.reused)
    parts: dict[int, list[dict]] = {}
    for r in returns:
        for rec in r["records"]:
            records[rec["shard"]] = rec
        for p in r["parts"]:
            parts.setdefault(p["shard"], []).append(p)
    for j in sorted(parts):
        if j not in records:
            records[j] = assemble(store, spec, j, parts[j])
    missing = [j for j in range(spec.n_shards) if j not in records]
    if missing:
        raise OutputError(f"{store.uri}: shard {shard_name(spec.name, missing[0])} was not written; rerun to resume")
    return [records[j] for j in range(spec.n_shards)]


def _where(d: Decision):
    from maskpipe.io.formats import locator_word

    word = locator_word(d.plan.fmt)
    return lambda file_index, pos: f"{d.plan.display_files[file_index]} {word} {pos}"


def _check_bad_fraction(d: Decision, total: Tally) -> None:
    limit = d.cfg.execution.max_bad_fraction
    if limit is None:
        return
    bad = sum(total.bad.values()) + len(d.plan.file_errors)
    denom = max(1, d.plan.n_rows + len(d.plan.file_errors))
    if bad / denom > limit:
        raise BadRecordsError(f"execution.max_bad_fraction: {bad} of {denom} input records are bad "
                              f"({bad / denom:.4f} > {limit}); see stats.json bad_records, fix the input or "
                              "raise the threshold")


def _quarantine_lines(d: Decision, total: Tally) -> bytes:
    from maskpipe.io.formats import locator_word

    plan = d.plan
    word = locator_word(plan.fmt)
    out = []
    for i, reason in plan.file_errors:
        out.append(json.dumps({"file": plan.display_files[i], "reason": reason}, sort_keys=True))
    for row, f, pos, reason in sorted(total.quarantine, key=lambda q: (q[1], q[2], q[0])):  # file, locator
        out.append(json.dumps({"file": plan.display_files[f], word: pos, "reason": reason}, sort_keys=True))
    return ("\n".join(out) + ("\n" if out else "")).encode()


def build_manifest(d: Decision, records: list[dict]) -> dict:
    """The content of ``manifest.json`` (docs/format.md): what the run published, and as whom.

    No timestamps or host names: the manifest is byte-identical across reruns. New manifest
    fields go here.
    """
    shards = [{"path": r["path"], "samples": r["samples"], "bytes": r["bytes"], "sha256": r["sha256"],
               "epoch": d.spec.epoch_of(r["shard"])} for r in records]
    return {
        "format": "maskpipe/1",
        "name": d.cfg.name,
        "maskpipe_version": __version__,
        "config_hash": d.identity.config_hash,
        "seed": d.cfg.seed,
        "key_id": d.identity.key_id,
        "shards": shards,
        "totals": {"shards": len(shards), "samples": sum(s["samples"] for s in shards),
                   "bytes": sum(s["bytes"] for s in shards)},
        "stats": "stats.json",
        **trainer_facts(d, records),
        "masks": MASKS_NAME,
    }


def trainer_facts(d: Decision, records: list[dict]) -> dict:
    """What a trainer reads from the manifest (docs/format.md, "fields" and "tokenizers").

    * ``fields``: each member the samples carry, from what the shards recorded as written
      (:mod:`maskpipe.fields`): name, what ``maskpipe.stream`` decodes it to, dtype and shape of
      ``.npy`` members (``[n]`` when every sample has ``n`` elements, ``[null]`` when it varies),
      and how many samples carry it. Left out when a reused shard predates member records.
    * ``tokenizers``: per mask step with a tokenizer, the step, its field, the file's name and
      sha256, the vocabulary size and the special ids by role (pad, unk, cls, sep, mask, bos, eos).
    """
    from maskpipe.fields import manifest_fields
    from maskpipe.tokenizer import tokenizer_facts

    out: dict = {}
    fields = manifest_fields(r.get("members") for r in records)
    if fields is not None:
        out["fields"] = fields
    tokenizers = []
    for i, m in enumerate(d.cfg.masks):
        path = getattr(m, "tokenizer", None)
        if path:
            tokenizers.append({"step": i, "kind": m.kind, "field": m.target().field,
                               **tokenizer_facts(path, getattr(m, "mask_token", None))})
    out["tokenizers"] = tokenizers
    return out


def wids_descriptor(d: Decision, records: list[dict]) -> dict:
    """``wids.json``: the shard list in the form webdataset's ``wids.ShardListDataset`` reads
    (``wids_version`` 1; shard urls relative to the descriptor's folder)."""
    return {"wids_version": 1, "name": d.cfg.name,
            "shardlist": [{"url": r["path"], "nsamples": r["samples"], "filesize": r["bytes"]} for r in records]}


def write_manifest(store: OutputStore, manifest: dict) -> None:
    """Publish ``manifest.json`` (atomically; the last file of a run)."""
    store.write_bytes("manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())


def commit(d: Decision, returns: list[dict]) -> dict:
    """Publish the run from the write tasks' returns; returns the stats written."""
    store, spec, plan, cfg = d.store, d.spec, d.plan, d.cfg
    records = collect_records(d, returns)
    total = Tally.zero(spec.schema)
    for rec in records:
        total.add(Tally.from_record(rec))
    check_unique_keys(store, spec, total.samples, cfg.input.key, _where(d))
    _check_bad_fraction(d, total)
    stats = stats_json(spec.schema, total, policy=cfg.execution.on_error, rows_in=plan.n_rows,
                       files_in=len(plan.files), files_unreadable=len(plan.file_errors), privacy=cfg.privacy)
    store.write_bytes("stats.json", (json.dumps(stats, indent=1) + "\n").encode())
    if cfg.execution.on_error == "quarantine":
        store.write_bytes("quarantine.jsonl", _quarantine_lines(d, total))
    store.write_bytes(MASKS_NAME, (json.dumps(masks_record(cfg), indent=1, sort_keys=True) + "\n").encode())
    store.write_bytes("wids.json", (json.dumps(wids_descriptor(d, records), indent=1) + "\n").encode())
    write_manifest(store, build_manifest(d, records))
    store.delete_dir(f"{META}/parts")
    return stats


def write_runlog(d: Decision, seconds: float) -> None:
    """One JSON file per finished run under ``.maskpipe/runlog/`` (timings: never in the manifest)."""
    cfg, plan = d.cfg, d.plan
    entry = {"finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 3),
             "rows": plan.n_rows, "rows_per_s": round(plan.n_rows / seconds, 1) if seconds else None,
             "shards": d.spec.n_shards, "resumed_shards": len(d.reused), "host": socket.gethostname(),
             "address": cfg.execution.address or "embedded", "parallelism": cfg.execution.parallelism,
             "batch_size": cfg.execution.batch_size, "maskpipe_version": __version__}
    d.store.write_json(f"{META}/runlog/{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}.json", entry)
