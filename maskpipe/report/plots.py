"""matplotlib (Agg backend) figures embedded as base64 PNG: the report's only plotting code.

matplotlib is the ``report`` extra (``pip install 'maskpipe[report]'``); it is imported when a
report is built, never by a run. Figures carry no metadata (no version, no date), so the same
stats give the same bytes.
"""
from __future__ import annotations

import base64
import io

REPORT_EXTRA = "pip install 'maskpipe[report]'"
BLUE, ORANGE, RED, GREY = "#3a6fb0", "#e07b28", "#c62828", "#8a93a3"
PALETTE = ["#3a6fb0", "#e07b28", "#3f9b5a", "#b8443b", "#7d5ba6", "#8c6b4f", "#d36fae", "#6d7a89", "#b8b23a", "#36a3b5"]


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, or a one-line error naming the extra."""
    try:
        import matplotlib
    except ImportError:
        from maskpipe.errors import MaskpipeError

        raise MaskpipeError(f"maskpipe report needs matplotlib; run `{REPORT_EXTRA}`") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "svg.hashsalt": "maskpipe", "figure.dpi": 100})
    return plt


def figure(w: float = 5.6, h: float = 2.6):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(w, h))
    return fig, ax


def img(fig, alt: str) -> str:
    """An ``<img>`` holding the figure as a base64 PNG (the figure is closed)."""
    from html import escape

    plt = pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="plot" alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def bars(labels: list[str], values: list[float], title: str, xlabel: str = "", color: str = BLUE,
         horizontal: bool | None = None) -> str:
    """A bar chart (horizontal when there are many or long labels)."""
    horizontal = horizontal if horizontal is not None else (len(labels) > 8 or max(map(len, labels), default=0) > 10)
    h = max(2.0, 0.28 * len(labels) + 0.9) if horizontal else 2.6
    fig, ax = figure(5.6, min(h, 9.0))
    if horizontal:
        ax.barh(range(len(labels)), values, color=color)
        ax.set_yticks(range(len(labels)), labels)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
    else:
        ax.bar(range(len(labels)), values, color=color)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylabel(xlabel)
    ax.set_title(title)
    return img(fig, title)
