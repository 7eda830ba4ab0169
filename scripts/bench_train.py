"""Training throughput and memory on this machine: `make bench-train` (or this script).

Generates an image folder (default 40,000 JPEGs of 128x128 made from the synthetic person/no-person
generator, labels from the class folders) and measures, for MobileNetV1 alpha 0.25 at 96x96 RGB, batch 32,
MLPerf augmentation:

1. the dataset cache build rate (decode + resize into the memory-mapped cache, all cores, images/s);
2. training images/s with 0, 1 and 2 DataLoader workers, over --steps batches each after 5 warm-up batches
   (a fresh process each), and the RssAnon of that process and its workers (/proc/PID/status);
3. one full epoch with `tinyml train` (default workers), its images/s from metrics.json and the peak RssAnon
   of the training process and of its worker processes, sampled every 0.5 s;
4. the same RssAnon with a 10x smaller folder, to show memory does not grow with the dataset;
5. GPU figures (the same runs with --device cuda) where CUDA exists, else it says so.

Writes OUT/bench_train.json and OUT/bench_train.md and prints the Markdown. Needs Linux (/proc).

    .venv/bin/python scripts/bench_train.py [--images 40000] [--steps 100] [--work /tmp/tinyml-bench-train]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SOURCE_SIZE = 128  # generated JPEGs are 128x128: decoding includes a real resize to 96x96
BASES = 512  # distinct synthetic images; each file is one of them shifted and flipped


# ---------------------------------------------------------------- /proc memory


def proc_status(pid: int) -> dict[str, int]:
    """RssAnon, RssFile, VmRSS (status) and Pss_Anon (smaps_rollup: shared copy-on-write pages split between
    the processes sharing them) of a process in bytes (empty if it has gone)."""
    out = {}
    for name, keys in (("status", ("RssAnon", "RssFile", "VmRSS")), ("smaps_rollup", ("Pss_Anon",))):
        try:
            for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
                key, _, val = line.partition(":")
                if key in keys:
                    out[key] = int(val.split()[0]) * 1024
        except OSError:
            pass
    return out


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (DataLoader workers, pool processes), found from /proc/*/status PPid."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                for line in (d / "status").read_text().splitlines():
                    if line.startswith("PPid:"):
                        parent[int(d.name)] = int(line.split()[1])
                        break
            except OSError:
                continue
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        frontier += kids
    return out


class RssSampler:
    """Peak RssAnon of one process and of the sum over it and its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        self.pid, self.every = pid, every
        self.peak_main = self.peak_total = self.peak_workers = self.peak_pss = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        main = proc_status(self.pid)
        kids = [proc_status(c) for c in descendants(self.pid)]
        anon = [k.get("RssAnon", 0) for k in kids]
        self.peak_main = max(self.peak_main, main.get("RssAnon", 0))
        self.peak_workers = max(self.peak_workers, max(anon, default=0))
        self.peak_total = max(self.peak_total, main.get("RssAnon", 0) + sum(anon))
        self.peak_pss = max(self.peak_pss, sum(p.get("Pss_Anon", 0) for p in [main, *kids]))

    def __enter__(self) -> RssSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def result(self) -> dict[str, float]:
        mb = 1 << 20
        return {"rss_anon_main_mb": round(self.peak_main / mb, 1),
                "rss_anon_largest_worker_mb": round(self.peak_workers / mb, 1),
                "rss_anon_total_mb": round(self.peak_total / mb, 1),
                "pss_anon_total_mb": round(self.peak_pss / mb, 1)}


# ---------------------------------------------------------------- the dataset


def _write_files(args: tuple[str, int, int, int]) -> int:
    """Every file made from synthetic bases b0..b1-1 (in a pool process): each base is drawn once."""
    import numpy as np
    from PIL import Image

    from tinyml.data.synthetic import synthetic_image

    root, b0, b1, n = Path(args[0]), args[1], args[2], args[3]
    written = 0
    for b in range(b0, b1):
        base = synthetic_image(7, b, SOURCE_SIZE, person=bool(b % 2))
        cls = "person" if b % 2 else "non_person"
        for i in range(b, n, BASES):
            img = np.roll(base, (i // BASES) % SOURCE_SIZE, axis=1)
            if (i // BASES) % 2:
                img = img[:, ::-1]
            Image.fromarray(np.ascontiguousarray(img)).save(root / cls / f"{i:06d}.jpg", quality=90)
            written += 1
    return written


def make_folder(root: Path, n: int) -> float:
    """A folder of n JPEGs (kept between runs: regenerated only when the count differs); returns seconds."""
    stamp = root / "count.txt"
    if stamp.is_file() and stamp.read_text() == str(n):
        return 0.0
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    shutil.rmtree(root, ignore_errors=True)
    for cls in ("person", "non_person"):
        (root / cls).mkdir(parents=True)
    t0 = time.time()
    parts = [(str(root), b, min(b + 16, BASES), n) for b in range(0, min(BASES, n), 16)]
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        with tqdm(total=n, desc=f"generating {n} JPEGs", unit="img") as bar:
            for done in pool.map(_write_files, parts):
                bar.update(done)
    stamp.write_text(str(n))
    return time.time() - t0


def build_cache(root: Path, cache: Path) -> dict[str, Any]:
    """Build the memory-mapped cache from scratch; images/s of decode + resize + write + checksum."""
    from tinyml.data.folder import load_folder

    shutil.rmtree(cache, ignore_errors=True)
    t0 = time.time()
    x, _, _ = load_folder(root, 96, 3, cache_dir=cache, progress=True)
    s = time.time() - t0
    return {"images": len(x), "seconds": round(s, 1), "images_per_s": round(len(x) / s, 1),
            "cache_mb": round(sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / (1 << 20), 1)}


# ---------------------------------------------------------------- training runs


def steps_child(data: Path, cache: Path, workers: int, steps: int, device: str) -> dict[str, Any]:
    """In a fresh process: `steps` training batches (after 5 warm-ups) with `workers` DataLoader workers."""
    import torch

    from tinyml.data import load_splits
    from tinyml.models import ModelConfig, build_model
    from tinyml.train.batches import EpochBatches, make_loader
    from tinyml.train.device import resolve_device
    from tinyml.train.loop import TrainConfig, _param_groups, _Step

    splits = load_splits(f"folder:{data}", resolution=96, channels=3, cache_dir=cache, progress=False)
    dev = resolve_device(device)
    torch.manual_seed(0)
    model = build_model(ModelConfig(alpha=0.25, resolution=96, channels=3)).to(dev.torch).train()
    opt = torch.optim.Adam(_param_groups(model, TrainConfig().l2), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if dev.grad_scaler else None
    batches = EpochBatches(splits.train_x, splits.train_y, 32, 0, True)
    loader, keys = make_loader(batches, workers, dev.pin_memory)
    step = _Step(model, opt, dev, scaler)

    def forever() -> Any:  # epoch after epoch, as training does
        while True:
            yield from loader
            keys.epoch += 1

    it = forever()
    with RssSampler(os.getpid(), every=0.2) as rss:
        for _ in range(5):
            step(*next(it))
        sync = torch.cuda.synchronize if dev.name == "cuda" else (lambda: None)
        sync()
        t0 = time.time()
        for _ in range(steps):
            step(*next(it))
        sync()
        seconds = time.time() - t0
        rss.sample()
    return {"workers": workers, "device": dev.name, "amp": dev.amp_dtype, "steps": steps, "batch": 32,
            "images_per_s": round(steps * 32 / seconds, 1), "train_images": len(splits.train_y),
            "torch_threads": torch.get_num_threads(), **rss.result()}


def run_steps(data: Path, cache: Path, workers: int, steps: int, device: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", json.dumps([str(data), str(cache), workers, steps, device])]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env={**os.environ,
                                                                                "PYTHONPATH": str(REPO)})
    if p.returncode != 0:
        raise SystemExit(f"bench_train: steps run with {workers} worker(s) failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def full_epoch(data: Path, cache: Path, out: Path, device: str) -> dict[str, Any]:
    """`tinyml train --epochs 1` on the whole folder, its process tree's RssAnon sampled as it runs."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "tinyml.cli", "train", "--data", f"folder:{data}", "--epochs", "1",
           "--cache-dir", str(cache), "--device", device, "--out", str(out)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            text=True)
    with RssSampler(proc.pid) as rss:
        stdout, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"bench_train: {' '.join(cmd)} failed (exit {proc.returncode})")
    m = json.loads((out / "metrics.json").read_text())
    e = m["epochs"][0]
    return {"device_line": stdout.splitlines()[0], "workers": m["train"]["workers_used"],
            "threads": m["train"]["threads_used"], "data": m["train"]["data_summary"],
            "images_per_s": e["images_per_s"], "epoch_seconds": e["seconds"],
            "wall_seconds": round(time.time() - t0, 1), "val_acc": round(e["val_acc"], 4), **rss.result()}


# ---------------------------------------------------------------- report


def markdown(r: dict[str, Any]) -> str:
    c = r["cache"]
    lines = [f"Machine: {r['machine']}; torch {r['torch']}; load average at start {r['load_avg']}.", "",
             f"Cache build ({c['images']:,} images, 128x128 JPEG -> 96x96x3 uint8, {r['build_workers']} "
             f"processes): **{c['images_per_s']:,.0f} images/s** ({c['seconds']} s, "
             f"{c['cache_mb']:,} MB on disk).",
             "", f"| device | workers | images/s (training, {r['steps']} batches of 32) | RssAnon main (MB) "
             "| RssAnon largest worker (MB) | RssAnon sum (MB) | Pss_Anon sum (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for s in r["steps_runs"]:
        lines.append(f"| {s['device']} | {s['workers']} | {s['images_per_s']:,.0f} "
                     f"| {s['rss_anon_main_mb']:,.0f} | {s['rss_anon_largest_worker_mb']:,.0f} "
                     f"| {s['rss_anon_total_mb']:,.0f} | {s['pss_anon_total_mb']:,.0f} |")
    f = r.get("full_epoch")
    if f:
        lines += ["", f"One full epoch, `tinyml train --epochs 1` ({f['workers']} worker(s), {f['threads']} "
                  f"threads): **{f['images_per_s']:,.0f} images/s**, epoch {f['epoch_seconds']} s; peak "
                  f"RssAnon {f['rss_anon_main_mb']:,.0f} MB (training process), "
                  f"{f['rss_anon_largest_worker_mb']:,.0f} MB (largest worker), "
                  f"{f['rss_anon_total_mb']:,.0f} MB (all processes, summed; Pss_Anon sum "
                  f"{f['pss_anon_total_mb']:,.0f} MB)."]
    sm = r.get("small")
    big = next((s for s in r["steps_runs"] if s["workers"] == 1 and s["device"] == "cpu"), None)
    if sm and big:
        lines += ["", f"Memory vs dataset size (1 worker): RssAnon total {sm['rss_anon_total_mb']:,.0f} MB "
                  f"with {sm['train_images']:,} training images, {big['rss_anon_total_mb']:,.0f} MB with "
                  f"{big['train_images']:,}."]
    lines += ["", r["gpu"]]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=40_000, help="images in the generated folder (default 40k)")
    ap.add_argument("--steps", type=int, default=100, help="batches per workers run (default 100)")
    ap.add_argument("--workers", default="0,1,2", help="worker counts to compare (default 0,1,2)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/tinyml-bench-train"),
                    help="where the generated folders and caches go (kept for reruns)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-train"), help="where results go")
    ap.add_argument("--no-full-epoch", dest="full_epoch", action="store_false", help="skip the 1-epoch run")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        data, cache, workers, steps, device = json.loads(a.child)
        print(json.dumps(steps_child(Path(data), Path(cache), workers, steps, device)))
        return 0
    import torch

    from tinyml.data.cache import build_workers

    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    r: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                         "torch": torch.__version__, "load_avg": load,
                         "steps": a.steps, "build_workers": build_workers()}
    data, small = a.work / f"folder_{a.images}", a.work / f"folder_{a.images // 10}"
    cache = a.work / "cache"
    r["generate_s"] = round(make_folder(data, a.images), 1)
    print(f"cache build of {a.images} images ...", flush=True)
    r["cache"] = build_cache(data, cache)
    print(json.dumps(r["cache"]), flush=True)
    r["steps_runs"] = []
    for w in (int(x) for x in a.workers.split(",")):
        print(f"training {a.steps} batches with {w} worker(s) ...", flush=True)
        r["steps_runs"].append(run_steps(data, cache, w, a.steps, "cpu"))
        print(json.dumps(r["steps_runs"][-1]), flush=True)
    make_folder(small, a.images // 10)
    build_cache(small, a.work / "cache_small")
    r["small"] = run_steps(small, a.work / "cache_small", 1, a.steps, "cpu")
    if a.full_epoch:
        print(f"one full epoch of `tinyml train` on {a.images} images ...", flush=True)
        r["full_epoch"] = full_epoch(data, cache, a.work / "run", "cpu")
        print(json.dumps(r["full_epoch"]), flush=True)
    if torch.cuda.is_available():
        r["gpu_runs"] = [run_steps(data, cache, w, a.steps, "cuda") for w in (0, 1, 2)]
        r["steps_runs"] += r["gpu_runs"]
        r["gpu"] = f"GPU: {torch.cuda.get_device_name(0)} (rows with device cuda above)."
    else:
        r["gpu"] = "GPU: none on this machine (torch.cuda.is_available() is False): no GPU figures measured."
    from tinyml.util import write_json_atomic, write_text_atomic

    a.out.mkdir(parents=True, exist_ok=True)
    md = markdown(r)
    write_json_atomic(a.out / "bench_train.json", r)
    write_text_atomic(a.out / "bench_train.md", md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
