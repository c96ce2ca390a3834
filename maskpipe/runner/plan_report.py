"""The dry run (``maskpipe plan``, ``maskpipe run --dry-run``): what a run would do, without Ray
and without writing anything.

It takes the steps a run takes before Ray starts, read-only: list and plan the input (reading
what planning reads: Parquet footers, line counts), look at the output folder (the no-op check, a
refusal, the shards a resume would reuse, the files an ``--incremental`` run would take), and
estimate the output size by processing the first rows of the input here (no Ray, nothing
written; the run's own masks and tar encoding). The output folder is never created.

A run that would be refused is refused here too (same message and exit code), so a scheduler or
CI job can check a plan before running it.

Example:
    >>> report = dry_run(load_config("pipelines/demo.yaml"))   # doctest: +SKIP
    >>> print(render_text(report))                             # doctest: +SKIP
"""
from __future__ import annotations

from maskpipe.config import PipelineConfig
from maskpipe.errors import OutputError
from maskpipe.io.plan import Plan, plan_input
from maskpipe.io.store import OutputStore
from maskpipe.runner.decide import (_effective_shard_samples, _identity_of, _keep_types, _prior_problem, finished,
                                    identify, locate_input, next_generation)
from maskpipe.runner.generations import InputListing
from maskpipe.runner.resume import reusable_shards
from maskpipe.sink import SinkSpec, shard_name
from maskpipe.stats import CounterSchema

SAMPLE_ROWS = 256      # rows processed here to estimate the output size
EOF_BYTES = 1024       # the tar end marker every shard ends with
TEXT_ROWS = 20         # files and shards listed in the text report (--json lists all)


def dry_run(cfg: PipelineConfig, overwrite: bool = False, verify: bool = False, incremental: bool = False) -> dict:
    """The plan of a run of ``cfg`` as a JSON-able dict (see docs/operations.md, "Dry run").

    Raises:
        InputError, OutputError, ConfigError: what the run would raise before starting Ray.
    """
    endpoint = cfg.execution.s3_endpoint
    fmt, files = locate_input(cfg)
    identity = identify(cfg, fmt, files)
    store = OutputStore(cfg.output.path, endpoint, create=False)
    listing = InputListing(cfg.input.path, files, endpoint)
    report = {"pipeline": cfg.name, "output": store.uri, "format": fmt, "incremental": incremental,
              "overwrite": overwrite, "generation": 1}
    first_shard, shard_samples, plan_files, earlier_samples, earlier = 0, None, files, [], []
    if incremental and not overwrite:
        nxt = next_generation(cfg, store, listing, identity, verify)
        report["generation"] = nxt.number
        report["earlier"] = {"generations": len(nxt.earlier), "files": sum(len(g.files) for g in nxt.earlier),
                             "shards": nxt.first_shard, "bytes": sum(s["bytes"] for s in nxt.published)}
        earlier_samples = nxt.published
        if not nxt.files:
            report.update(action="noop", note=f"no new input since generation {nxt.number - 1}; nothing would be "
                          "written", input={"files": [], "rows": 0, "bytes": 0}, shards=[],
                          shard_samples=nxt.shard_samples,
                          totals={"shards": nxt.first_shard, "write": 0, "reuse": 0},
                          estimate={"write_bytes": 0, "total_bytes": report["earlier"]["bytes"], "basis": "published"})
            return report
        first_shard, shard_samples, earlier = nxt.first_shard, nxt.shard_samples, nxt.earlier
        plan_files = sorted(f.path for f in nxt.files)
        taken = [listing.by_name[f["name"]].path for g in earlier for f in g.files]
        identity = _identity_of(identity, taken + plan_files, cfg, fmt)
        report["action"] = "resume" if nxt.resume is not None else "run"
        report["note"] = (f"generation {nxt.number}: {len(nxt.files)} new input file(s)"
                          + (", completing its interrupted run" if nxt.resume is not None else "")
                          + (f"; {len(nxt.later)} more left for the generation after" if nxt.later else ""))
    else:
        problem = _prior_problem(cfg, store, identity)
        if problem and not overwrite:
            raise OutputError(problem)
        done = None if overwrite else finished(store, identity, verify)
        report["action"] = "noop" if done is not None else "run"
        report["note"] = ("finished: a rerun is a no-op (nothing written)" if done is not None else
                          "--overwrite: the folder's earlier run would be cleared first" if overwrite and
                          store.read_json("manifest.json") is not None else "")
        if done is not None:
            report["generation"] = done[0].get("generation", 1)
    plan = plan_input(cfg.input.path, fmt, shard_samples or cfg.output.shard_samples, endpoint, cfg.execution.on_error,
                      cfg.input.csv_delimiter, files=plan_files, key=cfg.input.key,
                      first_row=first_shard * (shard_samples or 0))
    if shard_samples is None:
        shard_samples = _effective_shard_samples(cfg, plan, endpoint)
        plan = plan.recut(shard_samples)
    else:
        plan = _keep_types(plan, earlier)
    spec = SinkSpec(store.uri, endpoint, cfg.name, plan.first_row + plan.n_rows, shard_samples, CounterSchema.of(cfg),
                    run_id=identity.run_id)
    reused = {} if overwrite else reusable_shards(store, spec, verify, first=first_shard)
    noop = report["action"] == "noop"
    if reused and not noop and report["action"] == "run":
        report["action"] = "resume"
    sizes = {f.path: f.bytes for f in listing.files}
    errors = dict(plan.file_errors)
    report["input"] = {
        "files": [{"name": n, "rows": r, "bytes": sizes.get(p, 0), "unreadable": errors.get(i)}
                  for i, (n, p, r) in enumerate(zip(plan.names, plan.files, plan.file_rows))],
        "rows": plan.n_rows, "bytes": sum(sizes.get(p, 0) for p in plan.files)}
    report["shard_samples"] = shard_samples
    shards = []
    for j, (a, b) in enumerate(_shard_rows(spec, first_shard)):
        action = "published" if noop else "reuse" if j + first_shard in reused else "write"
        shards.append({"index": j + first_shard, "path": shard_name(cfg.name, j + first_shard), "rows": [a, b],
                       "files": _files_of(plan, a, b), "action": action})
    report["shards"] = shards
    report["totals"] = {"shards": spec.n_shards, "write": sum(s["action"] == "write" for s in shards),
                        "reuse": sum(s["action"] == "reuse" for s in shards)}
    report["estimate"] = _estimate(cfg, plan, shards, list(reused.values()) + earlier_samples)
    report["estimate"]["total_bytes"] += report.get("earlier", {}).get("bytes", 0)
    return report


def _shard_rows(spec: SinkSpec, first_shard: int) -> list[tuple[int, int]]:
    return [spec.shard_rows(j) for j in range(first_shard, spec.n_shards)]


def _files_of(plan: Plan, a: int, b: int) -> list[str]:
    """The input files whose rows fall in the global rows [a, b)."""
    out, start = [], plan.first_row
    for name, rows in zip(plan.names, plan.file_rows):
        if rows and start < b and start + rows > a:
            out.append(name)
        start += rows
    return out


def _estimate(cfg: PipelineConfig, plan: Plan, shards: list[dict], published: list[dict]) -> dict:
    """Bytes the shards to write would take: per-row bytes measured on published shards of this
    output when there are any, else on the first rows of the input processed here."""
    rows = sum(s["rows"][1] - s["rows"][0] for s in shards if s["action"] == "write")
    n_write = sum(s["action"] == "write" for s in shards)
    all_rows = sum(s["rows"][1] - s["rows"][0] for s in shards)
    per_row, basis = None, ""
    samples = sum(p.get("samples", 0) for p in published)
    if samples:
        per_row = sum(p.get("bytes", 0) - EOF_BYTES for p in published) / samples
        basis = f"measured on {len(published)} published shard(s) of this output"
    else:
        per_row, n = _sample_bytes(cfg, plan)
        basis = f"measured on the first {n} input row(s), processed here" if n else ""
    if per_row is None:
        per_row = plan_bytes_per_row(plan)
        basis = "input size per row (no row could be processed here)"
    return {"write_bytes": int(rows * per_row + n_write * EOF_BYTES),
            "total_bytes": int(all_rows * per_row + len(shards) * EOF_BYTES), "basis": basis}


def plan_bytes_per_row(plan: Plan) -> float:
    from maskpipe.io.fs import filesystem

    if not plan.n_rows:
        return 0.0
    fs, _ = filesystem(plan.display_files[0], plan.endpoint)
    return sum(i.size or 0 for i in fs.get_file_info(plan.files)) / plan.n_rows


def _sample_bytes(cfg: PipelineConfig, plan: Plan) -> tuple[float | None, int]:
    """(tar bytes per input row, rows processed) over the first :data:`SAMPLE_ROWS` rows, or
    (None, 0) when none can be processed here (a missing key variable, a bad first record)."""
    units = [u for u in plan.units if u.n_rows][:4]
    if not units:
        return None, 0
    try:
        from maskpipe.io.read import Reader
        from maskpipe.process import Processor

        reader = Reader(plan.read_spec(block_rows=SAMPLE_ROWS).for_units(units))
        proc = Processor(cfg, plan.display_files, plan.fmt)
        n, size = 0, 0
        for u in units:
            for t in reader.read(u):
                t = t.slice(0, SAMPLE_ROWS - n)
                out = proc(t)
                size += sum(len(b) for b in out.column("__tar").to_pylist())
                n += t.num_rows
                if n >= SAMPLE_ROWS:
                    return size / n, n
        return (size / n, n) if n else (None, 0)
    except Exception:  # noqa: BLE001 - an estimate only; the run reports such problems itself
        return None, 0


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def render_text(r: dict) -> str:
    """The human-readable plan (``--json`` prints the dict itself)."""
    inp = r["input"]
    lines = [f"plan     {r['pipeline']} -> {r['output']} (dry run: no Ray started, nothing written)",
             f"action   {r['action']}" + (f": {r['note']}" if r.get("note") else ""),
             f"input    {r['format']}, {len(inp['files'])} file(s), {inp['rows']:,} rows, {_size(inp['bytes'])}"
             + (f" (generation {r['generation']})" if r.get("incremental") else "")]
    for f in inp["files"][:TEXT_ROWS]:
        bad = f"  unreadable: {f['unreadable']}" if f["unreadable"] else ""
        lines.append(f"  {f['name']:<40} {f['rows']:>12,} rows {f['bytes']:>14,} bytes{bad}")
    if len(inp["files"]) > TEXT_ROWS:
        lines.append(f"  ... {len(inp['files']) - TEXT_ROWS} more (--json lists all)")
    if "earlier" in r:
        e = r["earlier"]
        lines.append(f"earlier  {e['generations']} generation(s): {e['files']} file(s), {e['shards']} shard(s), "
                     f"{_size(e['bytes'])} (kept as they are)")
    t = r["totals"]
    lines.append(f"shards   {len(r['shards'])} planned of {r.get('shard_samples') or 0:,} rows: {t['write']} to write, "
                 f"{t['reuse']} reused")
    for s in r["shards"][:TEXT_ROWS]:
        a, b = s["rows"]
        files = ", ".join(s["files"][:3]) + (" ..." if len(s["files"]) > 3 else "")
        lines.append(f"  {s['path']:<28} rows {a:,}-{b - 1:,}  {s['action']:<9} {files}")
    if len(r["shards"]) > TEXT_ROWS:
        lines.append(f"  ... {len(r['shards']) - TEXT_ROWS} more (--json lists all)")
    est = r["estimate"]
    lines.append(f"estimate {_size(est['write_bytes'])} to write, {_size(est['total_bytes'])} in all"
                 + (f" ({est['basis']})" if est["basis"] else ""))
    return "\n".join(lines)
