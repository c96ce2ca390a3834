"""Privacy: PII replacements by entity and scanned field, and whole-field rule counts."""
from __future__ import annotations

from typing import ClassVar

from maskpipe.report import plots
from maskpipe.report.base import RunFiles, note, num, table


def _privacy(run: RunFiles) -> dict:
    p = run.stats.get("privacy")
    return p if isinstance(p, dict) else {}


class PiiSection:
    id: ClassVar[str] = "pii"
    title: ClassVar[str] = "PII replacements by entity and field"

    def render(self, run: RunFiles) -> str | None:
        scan = _privacy(run).get("scan")
        if not isinstance(scan, dict) or not scan:
            return note("No privacy scan in this run (no privacy.scan section).")
        fields = [f for f in scan if isinstance(scan[f], dict)]
        entities = sorted({e for f in fields for e in scan[f]})
        totals = {e: sum(num(scan[f].get(e)) for f in fields) for e in entities}
        rows = [[e] + [num(scan[f].get(e)) for f in fields] + [totals[e]] for e in entities]
        rows.append(["all"] + [sum(num(v) for v in scan[f].values()) for f in fields] + [sum(totals.values())])
        fig, ax = plots.figure(5.6, max(2.2, 0.3 * len(entities) + 1.0))
        left = [0] * len(entities)
        for j, f in enumerate(fields):
            vals = [num(scan[f].get(e)) for e in entities]
            ax.barh(range(len(entities)), vals, left=left, color=plots.PALETTE[j % len(plots.PALETTE)], label=f)
            left = [a + b for a, b in zip(left, vals)]
        ax.set_yticks(range(len(entities)), entities)
        ax.invert_yaxis()
        ax.set_xlabel("replacements")
        ax.set_title("PII replacements by entity (stacked by field)")
        ax.legend(frameon=False, title="field", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        return plots.img(fig, "PII replacements by entity and field") + table(["entity"] + fields + ["total"], rows)


class FieldRulesSection:
    id: ClassVar[str] = "field-rules"
    title: ClassVar[str] = "Whole-field privacy rules"

    def render(self, run: RunFiles) -> str | None:
        rules = _privacy(run).get("fields")
        if not isinstance(rules, dict) or not rules:
            return note("No whole-field privacy rules in this run (privacy.fields).")
        rows = [[col, action, num(n)] for col, acts in rules.items() if isinstance(acts, dict) for action, n in acts.items()]
        chart = plots.bars([f"{r[0]} ({r[1]})" for r in rows], [r[2] for r in rows], "values changed per rule",
                           "values", plots.ORANGE)
        return chart + table(["column", "action", "values"], rows, numeric_from=2)
