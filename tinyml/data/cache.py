"""The decoded-dataset cache: images decoded once into one uint8 file that training memory-maps.

    CACHE_DIR/<name>/images.u8      N x H x W x C uint8, row i = item i (a blank row for an unreadable file)
    CACHE_DIR/<name>/labels.npy     N int64 labels
    CACHE_DIR/<name>/manifest.json  settings, and per finished chunk its SHA-256 and unreadable items
    CACHE_DIR/<name>.lock           held while a process builds or verifies the cache

Why: a decoded VWW set (115k images at 96x96 RGB, 3 GB) does not fit beside a sweep's parallel jobs when
each holds it in RAM. Mapped read-only, the rows live in the page cache, shared by every process that trains
on them, and a process's anonymous memory does not grow with the dataset.

The build decodes chunks of CHUNK images in a process pool, each worker writing its rows straight into the
file; a chunk counts as done only once the manifest (written atomically after the rows) says so, so a killed
build resumes with the chunks it had not finished. Opening a finished cache re-hashes every chunk; a chunk
that fails its checksum is decoded again (with a warning). `<name>` is a hash of the source, resolution,
channels and the labelling rule, so any change makes a new cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.data.images import decode_image, warn
from tinyml.errors import TinymlError
from tinyml.util import write_json_atomic

CHUNK = 1024  # images per chunk: the unit of parallel work, resumption and checksums
FORMAT = 2  # bump when the layout changes: old caches are then ignored (a new name)
Items = tuple[Sequence[Path], np.ndarray]  # image paths and their labels


@dataclass(frozen=True)
class Cached:
    """A finished cache: x is a read-only memmap [N,H,W,C]; `ok` marks the rows that decoded."""

    x: np.ndarray
    y: np.ndarray
    ok: np.ndarray
    skipped: int
    first_skipped: str
    decoded: int  # images this call decoded (0 when the cache was already complete and intact)
    path: Path


def _chunk_bounds(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


def _row_bytes(resolution: int, channels: int) -> int:
    return resolution * resolution * channels


def _open_rows(path: Path, n: int, resolution: int, channels: int, mode: str) -> np.memmap:
    return np.memmap(path, np.uint8, mode=mode, shape=(n, resolution, resolution, channels))


def _decode_chunk(images: str, n: int, start: int, paths: Sequence[str], resolution: int,
                  channels: int) -> tuple[int, str, list[int]]:
    """Decode `paths` into rows start.. of the file (in a pool process); return (start, sha256, bad rows)."""
    rows = _open_rows(Path(images), n, resolution, channels, "r+")
    bad = []
    for i, p in enumerate(paths):
        arr = decode_image(Path(p), resolution, channels)
        if arr is None:
            rows[start + i] = 0
            bad.append(start + i)
        else:
            rows[start + i] = arr
    rows.flush()
    block = rows[start:start + len(paths)]
    sha = hashlib.sha256(block.tobytes()).hexdigest()
    del rows
    return start, sha, bad


def _chunk_sha(f, start: int, end: int, row: int) -> str:
    f.seek(start * row)
    return hashlib.sha256(f.read((end - start) * row)).hexdigest()


def _verify(d: Path, manifest: dict) -> list[str]:
    """Chunks (their start index as text) whose bytes no longer match the manifest's SHA-256."""
    row = _row_bytes(manifest["resolution"], manifest["channels"])
    bad = []
    try:
        with open(d / "images.u8", "rb") as f:
            for key, c in manifest["chunks"].items():
                if _chunk_sha(f, int(key), c["end"], row) != c["sha256"]:
                    bad.append(key)
    except OSError:
        return list(manifest["chunks"])
    return bad


def _read_manifest(d: Path) -> dict | None:
    try:
        m = json.loads((d / "manifest.json").read_text())
        return m if m.get("format") == FORMAT else None
    except (OSError, ValueError):
        return None


def _start(d: Path, items: Items, resolution: int, channels: int, key: dict) -> dict:
    """A fresh, empty cache: the rows file at full size (sparse), the labels, a manifest with no chunks."""
    paths, labels = items
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "images.u8", "wb") as f:
        f.truncate(len(paths) * _row_bytes(resolution, channels))
    np.save(d / "labels.npy", np.asarray(labels, np.int64))
    m = {"format": FORMAT, "key": key, "count": len(paths), "resolution": resolution, "channels": channels,
         "chunk": CHUNK, "chunks": {}, "complete": False}
    write_json_atomic(d / "manifest.json", m)
    return m


def _build(d: Path, m: dict, paths: Sequence[Path], desc: str, progress: bool, workers: int,
           on_chunk: Callable[[int], None] | None) -> int:
    """Decode the chunks the manifest lacks, recording each in the manifest when done; return the count."""
    from tqdm import tqdm

    n, res, ch = m["count"], m["resolution"], m["channels"]
    todo = [(s, e) for s, e in _chunk_bounds(n, m["chunk"]) if str(s) not in m["chunks"]]
    total = sum(e - s for s, e in todo)
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress or total < 200, leave=False)
    args = [(str(d / "images.u8"), n, s, [str(p) for p in paths[s:e]], res, ch) for s, e in todo]

    def record(start: int, sha: str, bad: list[int]) -> None:
        end = min(start + m["chunk"], n)
        m["chunks"][str(start)] = {"end": end, "sha256": sha, "bad": bad,
                                   "first_bad": str(paths[bad[0]]) if bad else ""}
        write_json_atomic(d / "manifest.json", m)
        bar.update(end - start)
        if on_chunk:
            on_chunk(len(m["chunks"]))

    try:
        if workers <= 1 or len(todo) <= 1:
            for a in args:
                record(*_decode_chunk(*a))
        else:
            _build_pool(args, workers, record)
    finally:
        bar.close()
    return total


def _build_pool(args: list[tuple], workers: int, record: Callable[[int, str, list[int]], None]) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_decode_chunk, *a) for a in args]
        try:
            for fut in as_completed(futures):
                record(*fut.result())
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def build_workers() -> int:
    """Decoding processes: every core (the build runs before training starts)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def open_cached(d: Path, key: dict, list_items: Callable[[], Items], resolution: int, channels: int,
                desc: str, progress: bool = True, workers: int | None = None,
                on_chunk: Callable[[int], None] | None = None) -> Cached:
    """The cache in directory `d`, built or completed first if needed (under a file lock: parallel jobs wait
    for one builder and then share its result). `list_items` is called only when something must be decoded."""
    from filelock import FileLock

    lock = FileLock(str(d) + ".lock")
    try:
        d.parent.mkdir(parents=True, exist_ok=True)
        with lock:
            decoded = _complete(d, key, list_items, resolution, channels, desc, progress,
                                workers or build_workers(), on_chunk)
    except OSError as e:
        raise TinymlError(f"dataset cache {d}: {e.strerror or e}") from None
    m = _read_manifest(d)
    assert m is not None and m["complete"]
    bad = sorted(i for c in m["chunks"].values() for i in c["bad"])
    ok = np.ones(m["count"], bool)
    ok[bad] = False
    first = next((c["first_bad"] for _, c in sorted(m["chunks"].items(), key=lambda kv: int(kv[0]))
                  if c["bad"]), "")
    x = _open_rows(d / "images.u8", m["count"], resolution, channels, "r")
    return Cached(x=x, y=np.load(d / "labels.npy"), ok=ok, skipped=len(bad), first_skipped=first,
                  decoded=decoded, path=d)


def _complete(d: Path, key: dict, list_items: Callable[[], Items], resolution: int, channels: int, desc: str,
              progress: bool, workers: int, on_chunk: Callable[[int], None] | None) -> int:
    """Make the cache complete and intact; return how many images were decoded to get there."""
    m = _read_manifest(d)
    if m and m["complete"]:
        broken = _verify(d, m)
        if not broken:
            return 0
        warn(f"dataset cache {d}: {len(broken)} chunk(s) fail their SHA-256 checksum "
             f"(first: images {broken[0]}..{m['chunks'][broken[0]]['end'] - 1}); decoding them again")
        for k in broken:
            del m["chunks"][k]
        m["complete"] = False
        write_json_atomic(d / "manifest.json", m)
    items = list_items()
    if m is None or m["count"] != len(items[0]) or not (d / "images.u8").is_file():
        m = _start(d, items, resolution, channels, key)
    elif m["chunks"] and progress:
        warn(f"dataset cache {d}: resuming an interrupted build ({len(m['chunks'])} chunk(s) done)")
    done = _build(d, m, items[0], desc, progress, workers, on_chunk)
    m["complete"] = True
    write_json_atomic(d / "manifest.json", m)
    return done
