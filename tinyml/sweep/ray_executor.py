"""`tinyml sweep --executor ray`: each sweep point is one Ray task on a cluster; no shared filesystem needed.

    driver (`tinyml sweep`)                          any node of the Ray cluster
    base checkpoint bytes --- object store --->  tinyml_sweep_point: writes them into a temp dir and runs
    decoded data (file-based --data only)          runner.run_point there (what --executor local runs)
    SWEEP_DIR/points/<id>/ <------ bytes -------  every file of the point's directory, paths relocated

The driver writes what comes back atomically (record.json last), so SWEEP_DIR ends up as a local run leaves
it, and a rerun skips finished points whichever executor made them. Tasks request what they use: `--threads`
CPUs (the point's torch threads), a GPU when the point trains on CUDA, and `board:<name>` for a point that
flashes a real board (only the node with the probe offers it; emulated boards need nothing).

Faults: a task whose worker process or node dies is rerun by Ray, at most `max_retries` times; a point that
fails for its own reasons comes back as a record with an `error` and is not retried
(`retry_exceptions=False`); Ctrl-C ends the driver at once, which ends its Ray job, and Ray kills the job's
workers: finished points are already written, the others run again on the next run.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tinyml.errors import TinymlError, UsageError
from tinyml.sweep.points import Point
from tinyml.sweep.runner import (
    SweepContext,
    check_sweep_dir,
    is_finished,
    point_dir,
    read_record,
    record_path,
)
from tinyml.util import write_bytes_atomic, write_json_atomic

DEFAULT_MAX_RETRIES = 3
TASK_NAME = "tinyml_sweep_point"  # worker processes show it as `ray::tinyml_sweep_point`
CONNECT_TIMEOUT_S = 10.0

Files = dict[str, bytes]  # path relative to the point's directory -> content


# ---- what a point asks of the cluster ---------------------------------------------------------------------

def point_resources(ctx: SweepContext) -> dict[str, Any]:
    """Ray resource requests of one point: CPUs for its torch threads, a GPU on CUDA, a real board's probe."""
    res: dict[str, Any] = {"num_cpus": ctx.threads or 1, "num_gpus": 0}
    if str(getattr(ctx, "device", "") or "").startswith("cuda"):
        res["num_gpus"] = 1
    if ctx.option("port"):
        res["resources"] = {board_resource(str(ctx.option("board_name"))): 1}
    return res


def board_resource(board_name: str) -> str:
    """The custom resource a node with a real board offers: `ray start --resources '{"board:NAME": 1}'`."""
    return f"board:{board_name}"


def _unmet(need: dict[str, Any], nodes: list[dict[str, Any]]) -> str | None:
    """None if an alive node offers every requested resource, else what is missing (fail fast, not hang)."""
    want = {"CPU": need["num_cpus"], "GPU": need["num_gpus"], **need.get("resources", {})}
    want = {k: v for k, v in want.items() if v}
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive")]
    if any(all(r.get(k, 0) >= v for k, v in want.items()) for r in alive):
        return None
    return ", ".join(f"{v:g} {k}" for k, v in want.items())


# ---- moving a point's directory between machines ----------------------------------------------------------

def pack_dir(d: Path) -> Files:
    """Every regular file under `d` (relative POSIX paths -> bytes)."""
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def relocate(files: Files, pairs: Sequence[tuple[str, str]]) -> Files:
    """Rewrite absolute paths inside text files (records, JSON, Makefiles) from one machine's layout to
    another's.

    Binary files (checkpoints, .tflite, ELF) are left as they are: what they name is provenance only.
    """
    out = {}
    for rel, data in files.items():
        if b"\0" not in data:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = None
            if text is not None:
                for old, new in pairs:
                    text = text.replace(old, new)
                data = text.encode()
        out[rel] = data
    return out


def safe_relpath(rel: str) -> Path:
    """A path a task sent back, checked to stay inside the point's directory."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise TinymlError(f"a Ray task sent back a file outside its point directory: {rel!r}")
    return p


def write_point_files(pdir: Path, files: Files) -> None:
    """Write a point's files atomically, record.json last (until then the old record says what is done)."""
    order = sorted(files, key=lambda r: r == "record.json")
    for rel in order:
        path = pdir / safe_relpath(rel)
        if path.is_file() and path.read_bytes() == files[rel]:
            continue  # unchanged (shipped to the worker and back): keep its mtime
        write_bytes_atomic(path, files[rel])


# ---- the task ---------------------------------------------------------------------------------------------

@dataclass
class Shipment:
    """What every task receives besides its point: the base checkpoint (and data) as bytes, not paths."""

    base_name: str
    base: Any  # ObjectRef of the checkpoint bytes (resolved to bytes inside the task)
    base_metrics: bytes | None = None  # metrics.json beside the base (the base point's training time)
    splits: Any = None  # ObjectRef of the decoded splits when --data is file-based, else None
    status: Any = None  # the driver's SweepStatus actor (tinyml.sweep.ray_status)
    model_config: dict[str, Any] = field(default_factory=dict)


def tinyml_sweep_point(fields: dict[str, Any], ctx: SweepContext, ship: Shipment, files: Files) -> dict:
    """One point on a Ray worker: unpack into a temp dir, run `run_point`, send the point's files back."""
    import ray
    import torch

    from tinyml.sweep.runner import run_point, use_splits
    from tinyml.train.device import default_workers

    point = Point.from_fields(fields)
    here = f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"
    if ship.status is not None:  # before any work: a point lost from here on shows as a second attempt
        try:
            ray.get(ship.status.started.remote(point.id, here), timeout=5)
        except Exception:  # noqa: BLE001  (the progress bar is not worth failing a point for)
            pass
    with tempfile.TemporaryDirectory(prefix="tinyml-sweep-") as tmp:
        base = Path(tmp) / "base" / ship.base_name
        base.parent.mkdir(parents=True)
        base.write_bytes(ray.get(ship.base))
        if ship.base_metrics is not None:
            (base.parent / "metrics.json").write_bytes(ship.base_metrics)
        threads = point_resources(ctx)["num_cpus"]  # use exactly the CPUs the task was given
        torch.set_num_threads(threads)
        workers = ctx.workers if ctx.workers is not None else default_workers(threads)  # within those CPUs
        wctx = replace(ctx, base=str(base), out=str(Path(tmp) / "sweep"), cache_dir=None, progress=False,
                       threads=threads, workers=workers)
        here_dir, there_dir = point_dir(wctx, point), point_dir(ctx, point)
        inbound = [(str(there_dir), str(here_dir)), (ctx.base, wctx.base)]
        for rel, data in relocate(files, inbound).items():
            path = here_dir / safe_relpath(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if ship.splits is not None:
            use_splits(wctx, ship.model_config, lambda: ray.get(ship.splits))
        run_point(point, wctx)
        back = [(str(here_dir), str(there_dir)), (wctx.base, ctx.base)]
        return {"node": here, "files": relocate(pack_dir(here_dir), back)}


# ---- the driver -------------------------------------------------------------------------------------------

def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise UsageError(f"--ray-address {address!r}: use HOST:PORT (the head's GCS port, "
                          "6379 by default) or auto") from None


_OWN_DRIVER = False  # True once `connected` has started a driver of ours (not when inside someone else's)


@contextmanager
def connected(address: str) -> Iterator[None]:
    """Join the cluster at `address` (`auto`: RAY_ADDRESS or the cluster started on this machine).

    An address nothing listens on is a one-line error within seconds, not a long retry loop.
    """
    import ray

    global _OWN_DRIVER
    if ray.is_initialized():  # already inside a Ray driver (e.g. a Ray job): use its connection
        _OWN_DRIVER = False
        yield
        return
    kwargs: dict[str, Any] = {}
    if address != "auto":
        host, port = _host_port(address)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise TinymlError(f"no Ray cluster at {address}: {e.strerror or e} "
                              "(start one with `ray start --head`)") from None
        try:
            if ipaddress.ip_address(host).is_loopback:  # a cluster on this machine's loopback: join it there
                kwargs["_node_ip_address"] = host
        except ValueError:
            pass
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise TinymlError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0]}") from None
    _OWN_DRIVER = True
    try:
        yield
    except KeyboardInterrupt:
        raise  # no teardown: the process leaves by abandon_driver() (see there)
    except BaseException:
        ray.shutdown()
        raise
    ray.shutdown()


def abandon_driver(code: int) -> None:
    """After Ctrl-C, leave at once with `code` if a Ray driver of ours is connected: the job ends with the
    process and Ray kills its workers; finished points are already written.

    A graceful ray.shutdown() (or ray.cancel()) here races the replies of running tasks: in Ray 2.60 that
    trips a RAY_CHECK ("Tried to complete task that was not pending", the race of ray-project/ray#54798) that
    aborts the driver with exit code 1 and a C++ stack trace instead of a clean interruption.
    """
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not _OWN_DRIVER or not ray.is_initialized():
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _failed_record(ctx: SweepContext, point: Point, message: str) -> dict[str, Any]:
    """Record a point the cluster could not run (its own progress kept): a rerun tries it again."""
    path = record_path(ctx, point)
    rec = read_record(path) or {**point.fields(), "stages_done": [], "stage_seconds": {},
                                "settings": ctx.settings()}
    rec = {**rec, "error": message}
    write_json_atomic(path, rec)
    return rec


def _error_line(e: Exception) -> str:
    import ray.exceptions as rex

    if isinstance(e, rex.RayTaskError) and e.cause is not None:
        return f"{type(e.cause).__name__}: {str(e.cause).strip().splitlines()[-1]}"
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"


@dataclass
class Progress:
    """Per-point status for the bar: queued, on node X (attempt n), done or failed."""

    on_status: Callable[[str, str, dict[str, int]], None] | None = None
    state: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        for s in self.state.values():
            c["running" if s.startswith("on ") else s] += 1
        return c

    def set(self, point_id: str, status: str) -> None:
        self.state[point_id] = status
        if self.on_status:
            self.on_status(point_id, status, self.counts())

    def started(self, point_id: str, node: str) -> None:
        if self.state.get(point_id) in ("done", "failed"):
            return
        n = self.attempts[point_id] = self.attempts.get(point_id, 0) + 1
        self.set(point_id, f"on {node}" + (f" (attempt {n}: the previous worker was lost)" if n > 1 else ""))


def run_points_ray(points: Sequence[Point], ctx: SweepContext, address: str = "auto",
                   max_retries: int = DEFAULT_MAX_RETRIES,
                   on_done: Callable[[dict[str, Any]], None] | None = None,
                   on_status: Callable[[str, str, dict[str, int]], None] | None = None) -> list[dict]:
    """Run every unfinished point as a Ray task on the cluster at `address`; return all their records."""
    check_sweep_dir(ctx)
    todo = [p for p in points if not is_finished(read_record(record_path(ctx, p)), ctx.stages)]
    if todo:
        with connected(address):
            _run_tasks(todo, ctx, max_retries, on_done, Progress(on_status))
    return [read_record(record_path(ctx, p)) or {**p.fields(), "error": "not run"} for p in points]


def _shipment(ctx: SweepContext) -> Shipment:
    """Put the base checkpoint (and file-based data, decoded once here) into the object store."""
    import ray

    from tinyml.data import parse_spec
    from tinyml.models import read_checkpoint_file

    base = Path(ctx.base)
    metrics = base.parent / "metrics.json"
    model_config = dict(read_checkpoint_file(base)["model_config"])
    splits = None
    if parse_spec(ctx.data)[0] != "synthetic":  # synthetic data is generated where it is used
        from tinyml.data import load_splits

        s = load_splits(ctx.data, resolution=model_config["resolution"], channels=model_config["channels"],
                        val_fraction=ctx.val_fraction, seed=ctx.seed, limit=ctx.limit,
                        cache_dir=Path(ctx.cache_dir) if ctx.cache_dir else None, progress=ctx.progress)
        splits = ray.put(s)
    return Shipment(base_name=base.name, base=ray.put(base.read_bytes()),
                    base_metrics=metrics.read_bytes() if metrics.is_file() else None, splits=splits,
                    model_config=model_config)


def _status_actor() -> Any:
    """The status actor, pinned to the driver's node (a lost worker node must not take it along)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from tinyml.sweep.ray_status import SweepStatus

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(SweepStatus).options(num_cpus=0, scheduling_strategy=here, max_restarts=0).remote()
    try:
        ray.get(actor.drain.remote(), timeout=120)  # up before the first task reports to it
    except ray.exceptions.RayError as e:
        raise TinymlError(f"the Ray cluster could not start the sweep's status actor: "
                          f"{_error_line(e)}") from None
    return actor


def _run_tasks(todo: Sequence[Point], ctx: SweepContext, max_retries: int,
               on_done: Callable[[dict[str, Any]], None] | None, progress: Progress) -> None:
    import ray

    need = point_resources(ctx)
    missing = _unmet(need, ray.nodes())
    if missing:
        raise TinymlError(f"no node of the Ray cluster offers what a point needs ({missing}); "
                          + (f"start the node with the board with `ray start --resources "
                             f"'{{\"{board_resource(str(ctx.option('board_name')))}\": 1}}'`"
                             if ctx.option("port") else "lower --threads or add a node"))
    ship = _shipment(ctx)
    ship.status = _status_actor()
    task = ray.remote(tinyml_sweep_point).options(name=TASK_NAME, max_retries=max_retries,
                                                  retry_exceptions=False, **need)
    pending: dict[Any, Point] = {}
    for p in todo:
        pdir = point_dir(ctx, p)
        files = pack_dir(pdir) if record_path(ctx, p).is_file() else {}  # resume a partly done point there
        pending[task.remote(p.fields(), ctx, ship, files)] = p
        progress.set(p.id, "queued")
    try:
        with _ctrl_c_between_calls() as interrupted:
            _wait_all(pending, interrupted, ship, ctx, max_retries, on_done, progress)
    except BaseException:  # Ctrl-C (or a driver error): stop every task; finished points are written
        # Our own driver leaves at once (abandon_driver): the job ends and Ray kills its workers.
        # ray.cancel() only for a driver we do not own (it races the tasks' replies, see abandon_driver).
        if not _OWN_DRIVER:
            for ref in pending:
                ray.cancel(ref, force=True)
        raise


def _wait_all(pending: dict[Any, Point], interrupted: list[bool], ship: Shipment, ctx: SweepContext,
              max_retries: int, on_done: Callable[[dict[str, Any]], None] | None, progress: Progress) -> None:
    """Collect the points as they finish; a Ctrl-C is raised here, between Ray calls."""
    import ray

    while pending:
        if interrupted[0]:
            raise KeyboardInterrupt
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
        _poll(ship.status, progress)
        for ref in ready:
            p = pending.pop(ref)
            rec = _finish(ref, p, ctx, max_retries)
            progress.set(p.id, "failed" if rec.get("error") else "done")
            if on_done:
                on_done(rec)


@contextmanager
def _ctrl_c_between_calls() -> Iterator[list[bool]]:
    """SIGINT only sets a flag, which the wait loop turns into KeyboardInterrupt: raised inside a Ray call,
    it leaves Ray's driver state half updated (see abandon_driver)."""
    import signal
    import threading

    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def on_sigint(signum: int, frame: Any) -> None:
        flag[0] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _poll(status: Any, progress: Progress) -> None:
    import ray
    import ray.exceptions as rex

    try:
        events = ray.get(status.drain.remote(), timeout=10)
    except (rex.RayError, TimeoutError):
        return  # the bar misses a status, the sweep goes on
    for point_id, node in events:
        progress.started(point_id, node)


def _finish(ref: Any, point: Point, ctx: SweepContext, max_retries: int) -> dict[str, Any]:
    """Write what a task sent back into SWEEP_DIR; a task that failed becomes a failed record."""
    import ray
    import ray.exceptions as rex

    try:
        result = ray.get(ref)
    except rex.RayTaskError as e:  # raised by our task code itself: not retried
        return _failed_record(ctx, point, f"ray task: {_error_line(e)}")
    except rex.RayError as e:  # worker/node lost more than max_retries times, or cancelled
        return _failed_record(ctx, point, f"ray: lost the point's worker after {max_retries} retries "
                                          f"({_error_line(e)})")
    write_point_files(point_dir(ctx, point), result["files"])
    return read_record(record_path(ctx, point)) or _failed_record(ctx, point, "ray: no record came back")

