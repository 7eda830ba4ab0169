"""Running sweep points: one function per point, a list of stages per record, resumable, in parallel.

`run_point(point, ctx)` is the unit of work. It depends only on its arguments and on the point's own directory
`SWEEP_DIR/points/<id>/`, so any executor (this module's process pool, a cluster job, a board farm) can run
it.
A point's record is built by *stages*, each a function `(point, ctx, point_dir, record) -> new fields`:

    host sweep:   train (prune + train, or evaluate the base)  ->  profile (params, MACs, activation peak)
    device sweep: ... + quantize (int8, TFLM) -> build (compile, export, make) -> bench (run on the board)

After every stage the record is saved atomically with the stage's name in `stages_done`; a rerun runs only
the stages a record lacks. A killed sweep therefore loses at most the stage in progress of the points in
progress (and training itself resumes from the point's last.pt).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from tinyml.errors import TinymlError
from tinyml.sweep.points import Point
from tinyml.util import write_json_atomic, write_text_atomic

Stage = Callable[[Point, "SweepContext", Path, dict[str, Any]], dict[str, Any]]

# Stage name -> "module:function". Later stages (int8, compile, device) are added here by name; a context may
# also name a stage directly as "module:function".
STAGES: dict[str, str] = {
    "train": "tinyml.sweep.stages:train_stage",
    "profile": "tinyml.sweep.stages:profile_stage",
    "quantize": "tinyml.sweep.device:quantize_stage",
    "build": "tinyml.sweep.device:build_stage",
    "bench": "tinyml.sweep.device:bench_stage",
}
HOST_STAGES = ("train", "profile")
DEVICE_STAGES = (*HOST_STAGES, "quantize", "build", "bench")


@dataclass(frozen=True)
class SweepContext:
    """Everything a point needs besides the point itself. Plain values only: it crosses process boundaries."""

    base: str  # the unpruned checkpoint (absolute path)
    data: str
    out: str  # SWEEP_DIR
    epochs: int = 50
    batch_size: int = 32
    seed: int = 0
    val_fraction: float = 0.1
    limit: int | None = None
    augment: bool = True
    cache_dir: str | None = None
    threads: int | None = None
    workers: int | None = None  # DataLoader workers per point (None: the training default)
    device: str = "auto"
    progress: bool = True
    stages: tuple[str, ...] = HOST_STAGES
    # stage-specific settings, e.g. (("board", "cortex-m"),)
    options: tuple[tuple[str, Any], ...] = field(default=())

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepContext:
        """Rebuild from JSON (SWEEP_DIR/sweep.json's "context"), e.g. in another executor."""
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        d["stages"] = tuple(d.get("stages", HOST_STAGES))
        d["options"] = tuple(tuple(kv) for kv in d.get("options", ()))
        return cls(**d)

    def settings(self) -> dict[str, Any]:
        """What makes results comparable: a sweep dir holds only points made with the same settings.

        The base is identified by content, so moving the checkpoint file does not invalidate finished points.
        Stage options (board, port) are not part of it: a stage whose result depends on one records it itself.
        """
        return {"base_sha256": file_sha256(self.base), "data": self.data, "epochs": self.epochs,
                "batch_size": self.batch_size, "seed": self.seed, "val_fraction": self.val_fraction,
                "limit": self.limit, "augment": self.augment}

    def train_config(self) -> Any:
        from tinyml.train import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, seed=self.seed,
                           augment=self.augment, data=self.data, val_fraction=self.val_fraction,
                           limit=self.limit, threads=self.threads, workers=self.workers,
                           device=self.device)


@lru_cache(maxsize=8)
def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def point_dir(ctx: SweepContext, point: Point) -> Path:
    return Path(ctx.out) / "points" / point.id


def record_path(ctx: SweepContext, point: Point) -> Path:
    return point_dir(ctx, point) / "record.json"


def read_record(path: Path) -> dict[str, Any] | None:
    """A saved record, or None (missing, or unreadable: the point then simply runs again)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_finished(record: dict[str, Any] | None, stages: Sequence[str]) -> bool:
    if not record or record.get("error"):
        return False
    return all(s in record.get("stages_done", ()) for s in stages)


def resolve_stage(name: str) -> Stage:
    target = STAGES.get(name, name)
    module, _, func = target.partition(":")
    if not func:
        raise TinymlError(f"unknown sweep stage {name!r} (known: {', '.join(STAGES)}, or module:function)")
    return getattr(importlib.import_module(module), func)


@lru_cache(maxsize=2)
def _splits(data: str, resolution: int, channels: int, val_fraction: float, seed: int, limit: int | None,
            cache_dir: str | None, progress: bool) -> Any:
    from tinyml.data import load_splits

    return load_splits(data, resolution=resolution, channels=channels, val_fraction=val_fraction, seed=seed,
                       cache_dir=Path(cache_dir) if cache_dir else None, limit=limit, progress=progress)


# Splits an executor shipped to this process (a cluster node without the data files), by _splits_key.
_SHIPPED: dict[tuple, Any] = {}


def _splits_key(ctx: SweepContext, resolution: int, channels: int) -> tuple:
    return (ctx.data, resolution, channels, ctx.val_fraction, ctx.seed, ctx.limit)


def splits_for(ctx: SweepContext, cfg: Any) -> Any:
    """The sweep's data at the model's input size (decoded once per process, shared by its points)."""
    key = _splits_key(ctx, cfg.resolution, cfg.channels)
    if key in _SHIPPED:
        return _SHIPPED[key]
    return _splits(*key, ctx.cache_dir, ctx.progress)


def use_splits(ctx: SweepContext, model_config: dict[str, Any], fetch: Callable[[], Any]) -> None:
    """Make `splits_for` answer with shipped data (fetched once per process) instead of reading files."""
    key = _splits_key(ctx, model_config["resolution"], model_config["channels"])
    if key not in _SHIPPED:
        _SHIPPED[key] = fetch()


def run_point(point: Point, ctx: SweepContext) -> dict[str, Any]:
    """Bring `point`'s record up to `ctx.stages`; return it (with an `error` field if a stage failed).

    Never raises for a failing point (so one bad point does not stop a sweep), except on interruption.
    """
    pdir = point_dir(ctx, point)
    pdir.mkdir(parents=True, exist_ok=True)
    path = pdir / "record.json"
    settings = ctx.settings()
    record = read_record(path)
    if record is None or record.get("settings") != settings:
        record = {**point.fields(), "stages_done": [], "stage_seconds": {}, "settings": settings}
    record.pop("error", None)
    for name in ctx.stages:
        if name in record["stages_done"]:
            continue
        t0 = time.time()
        try:
            fields = resolve_stage(name)(point, ctx, pdir, dict(record))
        except TinymlError as e:
            return _failed(path, record, name, str(e))
        except Exception as e:  # a bug in a stage: keep the traceback beside the record, go on
            write_text_atomic(pdir / "error.txt", traceback.format_exc())
            return _failed(path, record, name, f"{type(e).__name__}: {e} (traceback in {pdir / 'error.txt'})")
        record.update(fields)
        record["stages_done"] = [*record["stages_done"], name]
        record["stage_seconds"] = {**record["stage_seconds"], name: round(time.time() - t0, 2)}
        write_json_atomic(path, record)
    return record


def _failed(path: Path, record: dict[str, Any], stage: str, message: str) -> dict[str, Any]:
    record = {**record, "error": f"{stage}: {message}"}
    write_json_atomic(path, record)
    return record


def _worker_init(parent_pid: int, threads: int | None) -> None:
    """In each pool process: share the cores, and exit if the sweep process dies (no orphaned training).

    Ctrl-C is the sweep process's to handle (it terminates the workers), so workers ignore SIGINT. A QEMU a
    worker booted dies with it (tinyml.device.transport sets its parent-death signal).
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads:
        import torch

        torch.set_num_threads(threads)

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True).start()


def check_sweep_dir(ctx: SweepContext) -> None:
    """SWEEP_DIR/sweep.json pins the settings: refuse to mix results of another base, data or schedule."""
    path = Path(ctx.out) / "sweep.json"
    now = ctx.settings()
    if path.exists():
        try:
            old = json.loads(path.read_text()).get("settings", {})
        except ValueError:
            old = {}
        diff = [k for k in now if old.get(k) != now[k]]
        if old and "base_sha256" in diff:
            raise TinymlError(f"{ctx.out} holds a sweep made from another base checkpoint than {ctx.base}; "
                              "use another --out")
        if old and diff:
            raise TinymlError(f"{ctx.out} holds a sweep made with other settings "
                              f"({', '.join(f'{k}: {old.get(k)} -> {now[k]}' for k in diff)}); "
                              "use another --out or the same settings")
    write_json_atomic(path, {"settings": now, "context": asdict(ctx)})


def run_points(points: Sequence[Point], ctx: SweepContext, jobs: int = 1,
               on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run every unfinished point (`jobs` > 1: in that many spawned processes); return all their records."""
    check_sweep_dir(ctx)
    todo = [p for p in points if not is_finished(read_record(record_path(ctx, p)), ctx.stages)]
    if jobs <= 1 or len(todo) <= 1:
        for p in todo:
            rec = run_point(p, ctx)
            if on_done:
                on_done(rec)
    else:
        _run_pool(todo, ctx, jobs, on_done)
    return [read_record(record_path(ctx, p)) or {**p.fields(), "error": "not run"} for p in points]


def _run_pool(todo: Sequence[Point], ctx: SweepContext, jobs: int,
              on_done: Callable[[dict[str, Any]], None] | None) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = ctx.threads or max(1, (os.cpu_count() or 1) // jobs)
    wctx = replace(ctx, progress=False, threads=threads)  # per-epoch bars of parallel points would interleave
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                             initargs=(os.getpid(), threads)) as pool:
        futures = {pool.submit(run_point, p, wctx): p for p in todo}
        try:
            for fut in as_completed(futures):
                rec = fut.result()
                if on_done:
                    on_done(rec)
        except BaseException:  # interrupted: stop the points in progress now (their writes are atomic)
            for proc in list((pool._processes or {}).values()):
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
