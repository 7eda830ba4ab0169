"""A small bounds-checked FlatBuffers reader: just enough to walk a .tflite file.

Written here (rather than using the generated schema module) so a truncated or corrupt file gives one clear
TinymlError instead of a struct.error deep inside generated code, and so the compile path never imports TF.
"""

from __future__ import annotations

import struct

import numpy as np

from tinyml.errors import TinymlError


class Malformed(TinymlError):
    """The file is not a well-formed flatbuffer (truncated, corrupt, or not a .tflite at all)."""


class Table:
    """One flatbuffer table: fields are addressed by their index in the schema (0, 1, 2, ...)."""

    def __init__(self, buf: bytes, pos: int, what: str):
        self.buf = buf
        self.pos = pos
        self.what = what
        soff = _read(buf, "<i", pos, what)
        self.vt = pos - soff
        self.vt_size = _read(buf, "<H", self.vt, what)
        if self.vt_size < 4 or self.vt + self.vt_size > len(buf):
            raise Malformed(f"corrupt {what} table")

    def _field(self, i: int) -> int:
        """Absolute position of field i, or 0 when absent (the field then has its default value)."""
        off = 4 + 2 * i
        if off + 2 > self.vt_size:
            return 0
        rel = _read(self.buf, "<H", self.vt + off, self.what)
        return self.pos + rel if rel else 0

    def scalar(self, i: int, fmt: str, default: int | float = 0) -> int | float:
        p = self._field(i)
        return _read(self.buf, fmt, p, self.what) if p else default

    def _target(self, i: int) -> int:
        p = self._field(i)
        return p + _read(self.buf, "<I", p, self.what) if p else 0

    def table(self, i: int, what: str) -> Table | None:
        p = self._target(i)
        return Table(self.buf, p, what) if p else None

    def tables(self, i: int, what: str) -> list[Table]:
        p, n = self._vector(i, 4)
        return [Table(self.buf, q + _read(self.buf, "<I", q, what), what) for q in range(p, p + 4 * n, 4)]

    def array(self, i: int, dtype: str) -> np.ndarray:
        """A vector of scalars as a numpy array (empty when absent)."""
        dt = np.dtype(dtype)
        p, n = self._vector(i, dt.itemsize)
        return np.frombuffer(self.buf, dtype=dt, count=n, offset=p).copy() if n else np.zeros(0, dt)

    def string(self, i: int) -> str:
        p, n = self._vector(i, 1)
        return self.buf[p : p + n].decode("utf-8", errors="replace")

    def _vector(self, i: int, item: int) -> tuple[int, int]:
        p = self._target(i)
        if not p:
            return 0, 0
        n = _read(self.buf, "<I", p, self.what)
        if p + 4 + n * item > len(self.buf):
            raise Malformed(f"a vector in a {self.what} runs past the end of the file (truncated?)")
        return p + 4, n


def root(buf: bytes, what: str) -> Table:
    if len(buf) < 8:
        raise Malformed(f"only {len(buf)} bytes: not a flatbuffer")
    return Table(buf, _read(buf, "<I", 0, what), what)


def _read(buf: bytes, fmt: str, pos: int, what: str) -> int | float:
    size = struct.calcsize(fmt)
    if pos < 0 or pos + size > len(buf):
        raise Malformed(f"a {what} points outside the file (offset {pos} of {len(buf)} bytes; truncated?)")
    return struct.unpack_from(fmt, buf, pos)[0]
