"""Sweep points: what one row of a sweep is (method, cut, head, tail, sparsity), with a stable id.

The id names the point's directory (`SWEEP_DIR/points/<id>/`), so it must never change for the same point:
it is spelled from the fields alone, e.g. `depth-c05-dscnn32_16-frozen`, `magnitude-s0.70`, `base`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinyml.errors import TinymlError, UsageError
from tinyml.models import NUM_BLOCKS
from tinyml.models.heads import parse_head_spec

METHODS = ("base", "depth", "magnitude")


@dataclass(frozen=True)
class Point:
    """One model of a sweep. `base` is the unpruned model itself (evaluated, not retrained)."""

    method: str
    cut: int | None = None
    head: str | None = None
    head_args: tuple[tuple[str, int], ...] = field(default=())
    unfreeze: bool = False
    sparsity: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise TinymlError(f"unknown sweep method {self.method!r} (known: {', '.join(METHODS)})")
        if self.method == "depth" and (self.cut is None or not self.head):
            raise TinymlError("a depth point needs a cut and a head")
        if self.method == "magnitude" and self.sparsity is None:
            raise TinymlError("a magnitude point needs a sparsity")
        object.__setattr__(self, "head_args", tuple(sorted(self.head_args)))

    @property
    def id(self) -> str:
        if self.method == "base":
            return "base"
        if self.method == "magnitude":
            return f"magnitude-s{self.sparsity:.2f}"
        args = "".join(f"-{k}{v}" for k, v in self.head_args)
        return f"depth-c{self.cut:02d}-{self.head}{args}-{'unfrozen' if self.unfreeze else 'frozen'}"

    @property
    def series(self) -> str:
        """The plot series this point belongs to (one line per method/head/tail)."""
        if self.method == "depth":
            args = "".join(f" {k}={v}" for k, v in self.head_args)
            return f"depth / {self.head}{args}" + (" (unfrozen)" if self.unfreeze else "")
        return self.method

    def fields(self) -> dict[str, Any]:
        """The point's own columns of a result record."""
        return {"id": self.id, "method": self.method, "series": self.series, "cut": self.cut,
                "head": self.head, "head_args": dict(self.head_args) or None,
                "tail": None if self.method != "depth" else ("unfrozen" if self.unfreeze else "frozen"),
                "sparsity": self.sparsity}

    @classmethod
    def from_fields(cls, d: dict[str, Any]) -> Point:
        return cls(method=d["method"], cut=d.get("cut"), head=d.get("head"),
                   head_args=tuple((d.get("head_args") or {}).items()),
                   unfreeze=d.get("tail") == "unfrozen", sparsity=d.get("sparsity"))


def parse_cuts(text: str) -> list[int]:
    """'1-13', '3,5,7' or '1-4,9' -> sorted unique block indices; out-of-range cuts are one-line errors."""
    cuts: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, dash, hi = part.partition("-")
        try:
            rng = range(int(lo), int(hi) + 1) if dash else range(int(part), int(part) + 1)
        except ValueError:
            raise TinymlError(f"bad --cuts {text!r}: use a range like 1-13 or a list like 3,5,7") from None
        if not rng:
            raise TinymlError(f"bad --cuts {text!r}: empty range {part}")
        for c in rng:
            if not 0 <= c < NUM_BLOCKS:
                raise UsageError(f"cut {c} out of range: blocks are 0 (first conv) .. {NUM_BLOCKS - 1}")
            cuts.add(c)
    return sorted(cuts)


def parse_sparsities(text: str) -> list[float]:
    """'0.5,0.7,0.9' -> [0.5, 0.7, 0.9]; each in [0, 1)."""
    out = []
    for part in text.split(","):
        try:
            s = float(part)
        except ValueError:
            raise UsageError(f"bad --magnitude {text!r}: use sparsities like 0.5,0.7,0.9") from None
        if not 0.0 <= s < 1.0:
            raise UsageError(f"magnitude sparsity must be in [0, 1), got {s}")
        out.append(round(s, 4))
    return sorted(set(out))


def make_points(cuts: list[int], heads: list[str], unfreeze: bool = False,
                sparsities: list[float] = ()) -> list[Point]:
    """The base point, then every (cut, head) depth point, then the magnitude points."""
    points = [Point("base")]
    specs = [parse_head_spec(h) for h in heads]
    for cut in cuts:
        for name, args in specs:
            points.append(Point("depth", cut=cut, head=name, head_args=args, unfreeze=unfreeze))
    points += [Point("magnitude", sparsity=s) for s in sparsities]
    return list(dict.fromkeys(points))
