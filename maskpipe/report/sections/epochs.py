"""Realized vs target per epoch, where stats.json has an ``epochs`` block.

Accepted shapes (the block is newer than this report's first version, so it is read
defensively): a list of ``{"epoch": e, "steps": [step, ...]}``, or a dict ``{epoch: {"steps":
[...]}}`` / ``{epoch: [step, ...]}``; a step holds ``index`` and ``realized_ratio`` (or
``masked`` and ``total``), optionally ``target_ratio``. Anything else gets a note, never an
error.
"""
from __future__ import annotations

from typing import ClassVar

from maskpipe.report import plots
from maskpipe.report.base import RunFiles, note, table


def _ratio(st: dict):
    rr = st.get("realized_ratio")
    if isinstance(rr, (int, float)):
        return float(rr)
    m, t = st.get("masked"), st.get("total")
    return m / t if isinstance(m, (int, float)) and isinstance(t, (int, float)) and t else None


def per_epoch(block) -> list[tuple[str, list[dict]]] | None:
    """[(epoch label, steps)] from an ``epochs`` block, or None when its shape is unknown."""
    items = []
    if isinstance(block, list):
        for i, e in enumerate(block):
            if isinstance(e, dict) and isinstance(e.get("steps"), list):
                items.append((str(e.get("epoch", i)), e["steps"]))
            else:
                return None
    elif isinstance(block, dict):
        for k, e in block.items():
            steps = e.get("steps") if isinstance(e, dict) else e
            if not isinstance(steps, list):
                return None
            items.append((str(k), steps))
    else:
        return None
    return [(lab, [s for s in steps if isinstance(s, dict)]) for lab, steps in items]


class EpochsSection:
    id: ClassVar[str] = "epochs"
    title: ClassVar[str] = "Per epoch"

    def render(self, run: RunFiles) -> str | None:
        if "epochs" not in run.stats:
            return None
        epochs = per_epoch(run.stats["epochs"])
        if not epochs:
            return note("stats.json has an epochs block in a shape this report does not know; see stats.json.")
        targets = {s.get("index"): s.get("target_ratio") for s in run.stats.get("steps") or [] if isinstance(s, dict)}
        series: dict = {}
        for lab, steps in epochs:
            for st in steps:
                idx = st.get("index")
                series.setdefault(idx, []).append((lab, _ratio(st), st.get("target_ratio", targets.get(idx))))
        fig, ax = plots.figure(5.6, 2.8)
        labels = [lab for lab, _ in epochs]
        for j, (idx, pts) in enumerate(sorted(series.items(), key=lambda kv: str(kv[0]))):
            color = plots.PALETTE[j % len(plots.PALETTE)]
            xs = [labels.index(p[0]) for p in pts if p[1] is not None]
            ys = [p[1] for p in pts if p[1] is not None]
            ax.plot(xs, ys, marker="o", color=color, label=f"step {idx} realized")
            tr = next((p[2] for p in pts if isinstance(p[2], (int, float))), None)
            if tr is not None:
                ax.axhline(tr, color=color, linestyle="--", linewidth=1, label=f"step {idx} target")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mask ratio")
        ax.set_title("realized vs target per epoch")
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        rows = [[lab, f"step {idx}", r, t] for idx, pts in sorted(series.items(), key=lambda kv: str(kv[0]))
                for lab, r, t in pts]
        return plots.img(fig, "realized vs target per epoch") + table(["epoch", "step", "realized", "target"], rows,
                                                                      numeric_from=2)
