"""``maskpipe preview``: the whole pipeline on the first N planned samples, in one process.

No Ray, no shards, nothing written to the output folder. The input is planned exactly as
``run`` plans it (:func:`~maskpipe.io.plan.plan_input`, same options), the first rows are read
with the run's :class:`~maskpipe.io.read.Reader` and every read table goes through
:func:`maskpipe.process.process_batch` with the run's :class:`~maskpipe.process.ProcessJob`:
the function each Ray task of ``run`` calls. So each previewed sample's bytes are the bytes
``run`` writes for that row (tests/test_preview.py compares them with a run's shards).

Shown per sample (:mod:`maskpipe.visible`): text with privacy replacements and masked tokens
marked, images original vs masked, spectrograms and waveforms with masked regions shaded,
tabular columns before and after. "Before" always means after the privacy step: no value from
before privacy is shown or written.

Example:
    >>> res = preview("pipelines/demo.yaml", samples=4)            # doctest: +SKIP
    >>> open("preview.html", "w").write(res.html())                # doctest: +SKIP
"""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from html import escape
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from maskpipe.config import PipelineConfig, load_config
from maskpipe.io.internal import INTERNAL
from maskpipe.io.plan import Plan, plan_input
from maskpipe.io.read import Reader
from maskpipe.io.tar import EOF_MARKER
from maskpipe.visible import Context, Sample, context_of, render_sample
from maskpipe.visible.blocks import Rendered
from maskpipe.visible.decode import samples_of


@dataclass
class PreviewSample:
    """One previewed row: what ``run`` writes for it (``tar``: the sample's bytes in its shard,
    empty for a bad record) and the sample as the views see it."""

    row: int
    tar: bytes
    sample: Sample


@dataclass
class PreviewResult:
    """What :func:`preview` computed.

    Attributes:
        cfg: the validated config.
        plan: the input plan (the run's).
        samples: the first rows, in row order.
        seconds: wall-clock time of the preview.
    """

    cfg: PipelineConfig
    plan: Plan
    samples: list[PreviewSample] = field(default_factory=list)
    seconds: float = 0.0

    def context(self) -> Context:
        return context_of(self.cfg)

    def rendered(self) -> list[Rendered]:
        ctx = self.context()
        return [render_sample(s.sample, ctx) for s in self.samples]

    def meta_html(self) -> str:
        cfg, plan = self.cfg, self.plan
        steps = ", ".join(f"[{i}] {m.kind} {m.target().field}" for i, m in enumerate(cfg.masks)) or "none"
        priv = "none"
        if cfg.privacy is not None:
            parts = [f"{c}: {a}" for c, a in cfg.privacy.fields.items()]
            if cfg.privacy.scan is not None:
                parts.append(f"scan {', '.join(cfg.privacy.scan.fields)} -> {cfg.privacy.scan.action}")
            priv = "; ".join(parts) or "none"
        items = [("pipeline", cfg.name), ("input", f"{plan.fmt}, {len(plan.files)} file(s), {plan.n_rows:,} rows planned"),
                 ("config hash", cfg.output_hash()[:16]), ("seed", str(cfg.seed)), ("mask steps", steps),
                 ("privacy", priv), ("samples", f"first {len(self.samples)} planned rows"),
                 ("time", f"{self.seconds:.2f} s, one process, no Ray")]
        return " &middot; ".join(f"{escape(k)} <code>{escape(v)}</code>" for k, v in items) + (
            "<br>What <code>maskpipe run</code> writes for these rows, byte for byte. "
            "&ldquo;before&rdquo; is after the privacy step: nothing from before privacy is shown.")

    def html(self) -> str:
        from maskpipe.visible.html import page

        return page(f"maskpipe preview: {self.cfg.name}", self.meta_html(), self.rendered())

    def png(self, path: str) -> str:
        from maskpipe.visible.png import grid

        return grid(self.rendered(), path, title=f"maskpipe preview: {self.cfg.name} (first {len(self.samples)} rows)")


def first_rows(plan: Plan, n: int) -> Iterator[pa.Table]:
    """The plan's first ``n`` rows as the run reads them (tables in row order)."""
    if n <= 0 or not plan.units:
        return
    reader = Reader(plan.read_spec(block_rows=max(1, min(n, 8192))))
    left = n
    for unit in plan.units:
        gen = reader.read(unit)
        try:
            for t in gen:
                if t.num_rows > left:
                    t = t.slice(0, left)
                left -= t.num_rows
                if t.num_rows:
                    yield t
                if left <= 0:
                    return
        finally:
            gen.close()


def _before(cfg: PipelineConfig, table: pa.Table, privacy) -> dict[int, dict]:
    """Row -> the mask steps' columns after privacy, before any mask (display only)."""
    cols = {m.target().field for m in cfg.masks} | {f for m in cfg.masks for f in getattr(m, "fields", [])}
    good = table.filter(pc.is_null(table.column("__bad")))
    if not good.num_rows or not cols:
        return {}
    rows = good.column("__row").to_pylist()
    user = good.drop_columns([c for c in INTERNAL if c in good.column_names])
    if privacy is not None:
        user, _ = privacy.apply(user)
    keep = [c for c in user.column_names if c in cols]
    values = {c: user.column(c).to_pylist() for c in keep}
    return {r: {c: values[c][i] for c in keep} for i, r in enumerate(rows)}


def preview(config: PipelineConfig | str | os.PathLike, overrides: list[str] | None = None,
            samples: int = 8) -> PreviewResult:
    """Run the pipeline on its first ``samples`` planned rows, in this process.

    Raises what ``run`` would raise for those rows (``ConfigError``, ``InputError``,
    ``BadRecordsError`` under ``on_error: fail``...), before anything is written.
    """
    from maskpipe.process import ProcessJob, process_batch
    from maskpipe.runner.decide import locate_input

    t0 = time.time()
    cfg = config if isinstance(config, PipelineConfig) else load_config(config, overrides)
    fmt, files = locate_input(cfg)
    plan = plan_input(cfg.input.path, fmt, cfg.output.shard_samples, cfg.execution.s3_endpoint,
                      cfg.execution.on_error, cfg.input.csv_delimiter, files=files, key=cfg.input.key)
    job = ProcessJob.of(cfg, plan.display_files, plan.fmt)
    privacy = None
    if cfg.privacy is not None and cfg.masks:
        from maskpipe.privacy import PrivacyStep

        privacy = PrivacyStep(cfg.privacy)
    where = (lambda r: f"row {r} -> {cfg.name}-{r // cfg.output.shard_samples:06d}.tar") if not cfg.output.shard_bytes \
        else (lambda r: f"row {r}")
    out: list[PreviewSample] = []
    for table in first_rows(plan, samples):
        before = _before(cfg, table, privacy)
        res = process_batch(table, job)
        for row, tar, bad in zip(res.column("__row").to_pylist(), res.column("__tar").to_pylist(),
                                 res.column("__bad").to_pylist()):
            if bad is not None or not tar:
                out.append(PreviewSample(row, b"", Sample("(bad record)", {}, where(row), bad=bad or "empty")))
                continue
            key, members = next(samples_of(io.BytesIO(tar + EOF_MARKER)))
            out.append(PreviewSample(row, tar, Sample(key, members, where(row), before.get(row))))
    return PreviewResult(cfg, plan, out, time.time() - t0)
