"""Sweep charts: accuracy against a cost (params, MACs, latency, RAM, flash), one series per method.

Each chart marks the unpruned base model with a star, labels depth points with their cut, joins each series'
points in the order of the cost axis (never in id order, which zig-zags), outlines the Pareto front (no other
point is both cheaper and more accurate) so the useful cut points stand out, and rings the point a pipeline
chose for the board. On RAM
and flash charts the board's budget is a vertical line (when it is near the points) and points that do not fit
are crossed out and left off the front.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from tinyml.util import atomic_path

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")
# Shown in the magnitude series' legend: its x value is a count a dense int8 model does not realise.
MAGNITUDE_NOTE = {"nonzero_params": "nonzero weights; dense .tflite unchanged",
                  "macs": "dense MACs: zeros are still multiplied"}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of (cost, accuracy) pairs not dominated by a cheaper-or-equal, more-or-equally accurate one."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def human(v: float, _pos: int | None = None) -> str:
    """Axis labels: 3k, 250k, 1.2M."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _x(row: dict[str, Any], x_key: str) -> float | None:
    """The row's cost: magnitude points are placed at their nonzero count on the parameter axis."""
    if row.get("method") == "magnitude" and x_key in ("params_folded", "params_bn_stats"):
        return row.get("nonzero_params")
    return row.get(x_key)


def plot_accuracy(rows: Sequence[dict[str, Any]], x_key: str, x_label: str, path: str | os.PathLike,
                  y_key: str = "val_acc", y_label: str = "float validation accuracy",
                  title: str = "", budget: tuple[float, str] | None = None,
                  chosen: str | None = None) -> bool:
    """Write one PNG; returns False (and writes nothing) when no row has both values. `chosen` (a row id)
    is ringed and labelled: the point a pipeline picked for the board."""
    import matplotlib.pyplot as plt

    fig = accuracy_figure(rows, x_key, x_label, y_key, y_label, title, budget, chosen)
    if fig is None:
        return False
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return True


def accuracy_figure(rows: Sequence[dict[str, Any]], x_key: str, x_label: str, y_key: str, y_label: str,
                    title: str, budget: tuple[float, str] | None, chosen: str | None) -> Any:
    """The chart as a matplotlib Figure (None without data): what plot_accuracy saves, and tests inspect."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    usable = [r for r in rows if _x(r, x_key) is not None and r.get(y_key) is not None]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    series = list(dict.fromkeys(r["series"] for r in usable if r["method"] != "base"))
    for k, name in enumerate(series):
        pts = sorted((r for r in usable if r["series"] == name), key=lambda r: _x(r, x_key))
        label = name
        if name == "magnitude":
            label += f" ({MAGNITUDE_NOTE.get('nonzero_params' if x_key.startswith('params') else x_key, '')})"
            label = label.replace(" ()", "")
        ax.plot([_x(r, x_key) for r in pts], [r[y_key] for r in pts], marker=MARKERS[k % len(MARKERS)],
                linestyle="--" if name == "magnitude" else "-", markersize=6, linewidth=1.0, label=label,
                color=f"C{k}", zorder=4)
        for r in pts:
            if r.get("cut") is not None:
                ax.annotate(str(r["cut"]), (_x(r, x_key), r[y_key]), textcoords="offset points",
                            xytext=(4, 5), fontsize=8, color=f"C{k}")
    for r in usable:
        if r["method"] == "base":
            ax.plot([_x(r, x_key)], [r[y_key]], marker="*", markersize=18, color="black", linestyle="none",
                    label="base (unpruned)", zorder=3)
    no_fit = [r for r in usable if r.get("fits") is False]
    if no_fit:
        ax.plot([_x(r, x_key) for r in no_fit], [r[y_key] for r in no_fit], marker="x", markersize=14,
                color="red", linestyle="none", label="does not fit the board", zorder=5)
    pairs = [(float(_x(r, x_key)), float(r[y_key])) for r in usable]
    fitting = [p for p, r in zip(pairs, usable) if r.get("fits") is not False]
    front = [fitting[i] for i in pareto_front(fitting)]
    if front:  # drawn even when one point dominates all the others
        ax.plot([p[0] for p in front], [p[1] for p in front], marker="o", markersize=13, color="gray",
                alpha=0.3, linestyle="none", zorder=0)
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="gray", alpha=0.3,
                linewidth=5, zorder=0, label="Pareto front (best accuracy at this cost)")
    pick = next((r for r in usable if chosen is not None and r.get("id") == chosen), None)
    if pick is not None:
        ax.plot([_x(pick, x_key)], [pick[y_key]], marker="o", markersize=20, markerfacecolor="none",
                markeredgecolor="darkorange", markeredgewidth=2.5, linestyle="none", zorder=6,
                label=f"chosen for the board: {chosen}")
        right_half = sorted(p[0] for p in pairs).index(float(_x(pick, x_key))) >= len(pairs) / 2
        ax.annotate(f"chosen: {chosen}", (_x(pick, x_key), pick[y_key]), textcoords="offset points",
                    xytext=(-14, -22) if right_half else (14, -22), ha="right" if right_half else "left",
                    fontsize=9, color="darkorange", fontweight="bold",
                    arrowprops={"arrowstyle": "-", "color": "darkorange"})
    xs = [p[0] for p in pairs]
    if budget and budget[0] <= 2 * max(xs):
        ax.axvline(budget[0], color="red", linestyle=":", linewidth=1.5, label=budget[1], zorder=1)
        xs.append(budget[0])
    if min(xs) > 0 and max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(human))
    if ax.get_xscale() == "log":  # label 2x and 5x between the decades too
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _p: human(v) if f"{v:.0e}"[0] in "25" else ""))
    if "acc" in y_key:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title or f"{y_label} vs {x_label}", fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.text(0.99, 0.01, "numbers next to points = cut after block K", ha="right", fontsize=7, color="gray")
    fig.tight_layout()
    return fig
