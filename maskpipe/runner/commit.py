"""Stage 3 of a run, on the driver: turn what the write tasks published into a finished output.

In order: shards split across write tasks are joined from their parts; every shard's tally is
added (records the decision reused plus records the write tasks returned: none is read again;
an incremental generation adds the earlier generations' records, read from ``.maskpipe/``, never
their shards); keys are checked unique over every generation (:mod:`~maskpipe.runner.keycheck`);
the bad-record share is checked; then ``stats.json``, ``quarantine.jsonl``, ``masks.json``,
``wids.json`` and, last, ``manifest.json`` are published.

The manifest's content is :func:`build_manifest` (the one place that says what a manifest holds);
:func:`write_manifest` publishes it.
"""
from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from maskpipe import __version__
from maskpipe.errors import BadRecordsError, OutputError
from maskpipe.io.store import META, OutputStore
from maskpipe.maskers.record import MASKS_NAME, masks_record
from maskpipe.runner.decide import Decision
from maskpipe.runner.generations import GenerationIndex, manifest_generations
from maskpipe.runner.keycheck import check_unique_keys
from maskpipe.runner.resume import HASH_THREADS
from maskpipe.sink import assemble, record_rel, shard_name
from maskpipe.stats import Tally, stats_json


@dataclass
class RunResult:
    """What a run published (or found already published).

    ``shards``, ``samples_in``, ``samples_out`` and ``bad`` count the whole output (every
    generation); ``generation`` is the output's generation now and ``new_shards`` the shards
    this run's generation added (0 for a no-op); ``note`` says why a no-op did nothing.
    """

    output: str
    shards: int
    samples_in: int
    samples_out: int
    bad: int
    skipped_shards: int
    noop: bool
    seconds: float
    stats: dict
    generation: int = 1
    new_shards: int = 0
    note: str = ""


def collect_records(d: Decision, returns: list[dict]) -> list[dict]:
    """Every shard's record, in shard order: reused ones, published ones, and the ones joined
    here from parts. Raises OutputError when a shard is missing."""
    store, spec = d.store, d.spec
    records: dict[int, dict] = dict(d.reused)
    records.update(_earlier_records(d))
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


def _earlier_records(d: Decision) -> dict[int, dict]:
    """The records of the earlier generations' shards (several read at a time), each checked
    against the previous manifest's entry: their shards are never read."""
    store, name = d.store, d.spec.name
    first = d.generation.first_shard
    if not first:
        return {}
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        recs = list(pool.map(lambda j: store.read_json(record_rel(name, j)), range(first)))
    for j, (rec, entry) in enumerate(zip(recs, d.published)):
        if not rec or any(rec.get(k) != entry.get(k) for k in ("path", "samples", "bytes", "sha256")):
            raise OutputError(f"{store.uri}: the record of published shard {shard_name(name, j)} is missing or does "
                              "not match manifest.json; pass --overwrite to rebuild the output")
    if len(d.published) != first:
        raise OutputError(f"{store.uri}: manifest.json lists {len(d.published)} shards, its generations {first}; "
                          "pass --overwrite to rebuild the output")
    return dict(enumerate(recs))


def _where(d: Decision, index: GenerationIndex):
    from maskpipe.io.formats import locator_word

    word = locator_word(d.plan.fmt)
    return lambda file_index, pos: f"{index.display[file_index]} {word} {pos}"


def _file_errors(d: Decision) -> int:
    return sum(len(g.file_errors) for g in d.generations)


def _check_bad_fraction(d: Decision, total: Tally) -> None:
    limit = d.cfg.execution.max_bad_fraction
    if limit is None:
        return
    bad = sum(total.bad.values()) + _file_errors(d)
    denom = max(1, sum(g.rows for g in d.generations) + _file_errors(d))
    if bad / denom > limit:
        raise BadRecordsError(f"execution.max_bad_fraction: {bad} of {denom} input records are bad "
                              f"({bad / denom:.4f} > {limit}); see stats.json bad_records, fix the input or "
                              "raise the threshold")


def _quarantine_lines(d: Decision, total: Tally, index: GenerationIndex) -> bytes:
    """quarantine.jsonl: unreadable files, then bad records, each in the order of the files
    of all generations sorted together (as a run over all of them lists them), then locator."""
    from maskpipe.io.formats import locator_word

    word = locator_word(d.plan.fmt)
    out = []
    errors = [(index.file_offset[k] + i, reason) for k, g in enumerate(d.generations) for i, reason in g.file_errors]
    for f, reason in sorted(errors, key=lambda e: index.rank[e[0]]):
        out.append(json.dumps({"file": index.display[f], "reason": reason}, sort_keys=True))
    rows = [(index.file_offset[index.of_row(row)] + f, pos, row, reason) for row, f, pos, reason in total.quarantine]
    for f, pos, row, reason in sorted(rows, key=lambda q: (index.rank[q[0]], q[1], q[2])):  # file, locator
        out.append(json.dumps({"file": index.display[f], word: pos, "reason": reason}, sort_keys=True))
    return ("\n".join(out) + ("\n" if out else "")).encode()


def build_manifest(d: Decision, records: list[dict]) -> dict:
    """The content of ``manifest.json`` (docs/format.md): what the run published, and as whom.

    No timestamps or host names: the manifest is byte-identical across reruns (a generation's
    time is in the run log). New manifest fields go here.
    """
    generation, shard_generation, generations = manifest_generations(d.generations, records)
    shards = [{"path": r["path"], "samples": r["samples"], "bytes": r["bytes"], "sha256": r["sha256"],
               "epoch": d.spec.epoch_of(r["shard"]), "generation": g} for r, g in zip(records, shard_generation)]
    return {
        "format": "maskpipe/1",
        "name": d.cfg.name,
        "maskpipe_version": __version__,
        "config_hash": d.identity.config_hash,
        "seed": d.cfg.seed,
        "key_id": d.identity.key_id,
        "generation": generation,
        "shards": shards,
        "totals": {"shards": len(shards), "samples": sum(s["samples"] for s in shards),
                   "bytes": sum(s["bytes"] for s in shards)},
        "stats": "stats.json",
        **trainer_facts(d, records),
        "masks": MASKS_NAME,
        "generations": generations,
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
    store, spec, cfg = d.store, d.spec, d.cfg
    records = collect_records(d, returns)
    index = GenerationIndex(d.generations)
    total = Tally.zero(spec.schema)
    for rec in records:
        total.add(Tally.from_record(rec))
    check_unique_keys(store, spec, total.samples, cfg.input.key, _where(d, index),
                      index.shard_file_offset if len(d.generations) > 1 else None)
    _check_bad_fraction(d, total)
    stats = stats_json(spec.schema, total, policy=cfg.execution.on_error, rows_in=sum(g.rows for g in d.generations),
                       files_in=sum(len(g.files) for g in d.generations), files_unreadable=_file_errors(d),
                       privacy=cfg.privacy)
    store.write_bytes("stats.json", (json.dumps(stats, indent=1) + "\n").encode())
    if cfg.execution.on_error == "quarantine":
        store.write_bytes("quarantine.jsonl", _quarantine_lines(d, total, index))
    store.write_bytes(MASKS_NAME, (json.dumps(masks_record(cfg), indent=1, sort_keys=True) + "\n").encode())
    store.write_bytes("wids.json", (json.dumps(wids_descriptor(d, records), indent=1) + "\n").encode())
    write_manifest(store, build_manifest(d, records))
    store.delete_dir(f"{META}/parts")
    return stats


def write_runlog(store: OutputStore, records: list[dict]) -> None:
    """The run's event records (:mod:`maskpipe.logs`, the same as ``--log-format json`` prints),
    one JSON object a line, in ``.maskpipe/runlog/<UTC time, microseconds>-<pid>.jsonl`` (timings: never in the
    manifest)."""
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    t = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}"  # two runs a second
    store.write_bytes(f"{META}/runlog/{stamp}-{os.getpid()}.jsonl", body)
