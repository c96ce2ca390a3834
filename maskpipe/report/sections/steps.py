"""Mask steps: realized vs target ratio per step, and each step's histogram of per-sample
mask ratios with the target and the realized ratio marked."""
from __future__ import annotations

from html import escape
from typing import ClassVar

from maskpipe.report import plots
from maskpipe.report.base import RunFiles, note, num, table


def steps_of(stats: dict) -> list[dict]:
    return [s for s in stats.get("steps") or [] if isinstance(s, dict)]


def label(s: dict) -> str:
    return f"[{s.get('index')}] {s.get('kind')} {s.get('field')}"


def histogram(s: dict) -> str | None:
    h = s.get("histogram") or {}
    edges, counts = h.get("edges"), h.get("counts")
    if not (isinstance(edges, list) and isinstance(counts, list) and len(edges) == len(counts) + 1 and counts):
        return None
    fig, ax = plots.figure(5.6, 2.5)
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    ax.bar(edges[:-1], counts, width=widths, align="edge", color=plots.BLUE, edgecolor="white", linewidth=0.5)
    tr, rr = s.get("target_ratio"), s.get("realized_ratio")
    if isinstance(tr, (int, float)):
        ax.axvline(tr, color=plots.RED, linestyle="--", linewidth=1.6, label=f"target {tr:.3f}")
    if isinstance(rr, (int, float)):
        ax.axvline(rr, color=plots.ORANGE, linewidth=1.4, label=f"realized {rr:.4f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("per-sample mask ratio (masked / maskable)")
    ax.set_ylabel("samples")
    ax.set_title(f"step {label(s)}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, loc="upper right")
    return plots.img(fig, f"histogram of per-sample mask ratios, step {s.get('index')}")


def realized_vs_target(steps: list[dict]) -> str:
    fig, ax = plots.figure(5.6, max(2.0, 0.45 * len(steps) + 1.0))
    ys = list(range(len(steps)))
    rr = [s.get("realized_ratio") if isinstance(s.get("realized_ratio"), (int, float)) else 0 for s in steps]
    ax.barh(ys, rr, color=plots.BLUE, height=0.55, label="realized")
    for y, s in zip(ys, steps):
        tr = s.get("target_ratio")
        if isinstance(tr, (int, float)):
            ax.plot([tr, tr], [y - 0.38, y + 0.38], color=plots.RED, linewidth=2.2,
                    label="target" if y == next(i for i, t in enumerate(steps) if isinstance(t.get("target_ratio"), (int, float))) else None)
    ax.set_yticks(ys, [label(s) for s in steps])
    ax.invert_yaxis()
    ax.set_xlim(0, max([1e-9] + rr + [s.get("target_ratio") or 0 for s in steps]) * 1.2)
    ax.set_xlabel("mask ratio")
    ax.set_title("realized vs target ratio per step")
    ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return plots.img(fig, "realized vs target ratio per step")


class StepsSection:
    id: ClassVar[str] = "steps"
    title: ClassVar[str] = "Mask steps"

    def render(self, run: RunFiles) -> str:
        steps = steps_of(run.stats)
        if not steps:
            return note("This run has no mask steps.")
        rows = []
        for s in steps:
            tr, rr = s.get("target_ratio"), s.get("realized_ratio")
            diff = rr - tr if isinstance(tr, (int, float)) and isinstance(rr, (int, float)) else None
            rows.append([label(s), tr, rr, diff, num(s.get("masked")), num(s.get("total")),
                         num(s.get("samples_without_positions"))])
        parts = [table(["step", "target", "realized", "realized - target", "masked", "maskable",
                        "samples without positions"], rows), realized_vs_target(steps)]
        for s in steps:
            h = histogram(s)
            parts.append(f'<div class="step" id="step-{escape(str(s.get("index")))}">'
                         + (h or note(f"step {label(s)}: stats.json has no histogram")) + "</div>")
        return "".join(parts)
