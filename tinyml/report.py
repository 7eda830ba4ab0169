"""Tables every stage prints and writes: aligned text for terminals, Markdown for reports, CSV for tools."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

from tinyml.util import write_text_atomic


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v)
    return str(v)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None,
                 markdown: bool = False) -> str:
    """Render rows as a right-aligned text table (or a Markdown pipe table) with thousands separators."""
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns else list(rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    if markdown:
        head = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |"
        sep = "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|"
        body = ["| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |" for row in cells]
        return "\n".join([head, sep, *body])
    head = "  ".join(c.rjust(w) for c, w in zip(cols, widths))
    body = ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join([head, "-" * len(head), *body])


def write_csv_atomic(path: str | os.PathLike, rows: Sequence[dict[str, Any]],
                     columns: Sequence[str] | None = None) -> None:
    """CSV with the union of keys as header (records may gain columns as later stages add them)."""
    cols = list(columns) if columns else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in cols})
    write_text_atomic(path, buf.getvalue())
