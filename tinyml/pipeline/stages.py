"""The pipeline's stages and their bookkeeping (RUN_DIR/pipeline.json): what ran, with which settings, where.

    RUN_DIR/
      pipeline.toml   the config of the last run (provenance)
      pipeline.json   per stage: key (hash of its settings and the stages before), done, outputs, seconds
      train/          best.pt, last.pt, metrics.json                          (tinyml train)
      sweep/          points/<id>/..., results.{md,csv,json}, acc_vs_*.png     (tinyml sweep)
      model/          <chosen>.tflite + .json                                 (quantize: the chosen point)
      firmware/       the exported, built firmware project                    (export)
      bench.json, bench.txt                                                   (flash + bench on the board)
      summary.md      the chosen model, its bench numbers, links to the sweep report and plots

A stage whose key is unchanged and whose outputs exist is reused; one with the same key but unfinished is
resumed in place; one whose key changed starts over in a clean directory (and so do the stages after it,
since their keys include its key).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyml.errors import TinymlError
from tinyml.pipeline.config import Config, sweep_list_text
from tinyml.util import write_bytes_atomic, write_json_atomic, write_text_atomic

STAGE_NAMES = ("train", "sweep", "quantize", "export", "flash", "bench")


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _device_argv(run: dict[str, Any]) -> list[str]:
    """run.device and run.workers as train/sweep flags (not in a stage's key: the CPU result is the same)."""
    return ["--device", run["device"]] + (["--workers", str(run["workers"])] if run["workers"] is not None
                                          else [])


def _verb(argv: list[str]) -> int:
    """Run a tinyml verb in this process (its TinymlError reaches the pipeline's caller as one line)."""
    from tinyml.cli import build_parser

    parser, mods = build_parser()
    args = parser.parse_args(argv)
    return int(mods[args.verb].run(args) or 0)  # type: ignore[attr-defined]


class Pipeline:
    """Runs the stages in order; each returns its outputs (paths and numbers) for pipeline.json."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.dir = Path(cfg["run"]["dir"])
        self.state_path = self.dir / "pipeline.json"
        self.state: dict[str, Any] = {}
        self.keys: dict[str, str] = {}
        self.board = None

    # ---- bookkeeping ----

    def _load_state(self) -> None:
        try:
            self.state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            self.state = {}
        self.state.setdefault("stages", {})

    def _save_state(self) -> None:
        write_json_atomic(self.state_path, self.state)

    def _stage(self, n: int, name: str, key: str, reset_key: str, outputs: list[str],
               work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Reuse, resume or (re)run one stage; `outputs` are paths under RUN_DIR it owns."""
        self.keys[name] = key
        old = self.state["stages"].get(name, {})
        label = f"[{n}/{len(STAGE_NAMES)}] {name}"
        if old.get("done") and old.get("key") == key and all((self.dir / o).exists() for o in outputs):
            print(f"== {label}: reused (finished earlier with the same settings)", flush=True)
            return old["outputs"]
        if old and old.get("reset_key") != reset_key:
            for o in outputs:  # settings changed: start this stage over, in a clean place
                p = self.dir / o.rstrip("/")
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        print(f"== {label}" + (": resuming" if old.get("reset_key") == reset_key and old else ""), flush=True)
        self.state["stages"][name] = {"key": key, "reset_key": reset_key, "done": False}
        self._save_state()
        t0 = time.time()
        out = work()
        self.state["stages"][name] = {"key": key, "reset_key": reset_key, "done": True, "outputs": out,
                                      "seconds": round(time.time() - t0, 1)}
        self._save_state()
        return out

    # ---- the run ----

    def run(self) -> int:
        from tinyml.firmware.boards import load_board

        t0 = time.time()
        self.board = load_board(self.cfg["run"]["board"])
        self.dir.mkdir(parents=True, exist_ok=True)
        self._load_state()
        copy, text = self.dir / "pipeline.toml", self.cfg.path.read_bytes()
        if not copy.exists() or copy.read_bytes() != text:  # the config of the last run, for provenance
            write_bytes_atomic(copy, text)
        from tinyml.train.device import resolve_device

        dev = resolve_device(self.cfg["run"]["device"]).describe()
        print(f"pipeline {self.cfg.path} -> {self.dir} (board {self.board.name}; {dev})", flush=True)
        train = self.train()
        sweep = self.sweep(train)
        chosen = self.select(train, sweep)
        model = self.quantize(chosen)
        fw = self.export(model)
        self.flash(fw)
        bench = self.bench(model)
        self.finish(sweep, chosen, model, fw, bench, time.time() - t0)
        rows = json.loads(Path(sweep["results"]).read_text())["points"] if sweep else []
        inexact = [r["id"] for r in rows if r.get("bit_exact") is False]
        if inexact or not bench.get("bit_exact"):
            if not bench.get("bit_exact"):
                inexact.append(f"the chosen model ({chosen['id']})")
            print(f"MISMATCH: device output differs from TFLM on {', '.join(inexact)}: a compiler or kernel "
                  "bug; see bench.txt of each")
            return 1
        return 0

    def train(self) -> dict[str, Any]:
        d, t, r = self.cfg["data"], self.cfg["train"], self.cfg["run"]
        key = _key("train", d, t)
        out = self.dir / "train"

        def work() -> dict[str, Any]:
            argv = ["train", "--data", d["spec"], "--out", str(out), "--epochs", str(t["epochs"]),
                    "--alpha", str(t["alpha"]), "--resolution", str(t["resolution"]),
                    "--channels", str(t["channels"]), "--batch-size", str(t["batch_size"]),
                    "--seed", str(d["seed"]), "--val-fraction", str(d["val_fraction"])]
            argv += ["--limit", str(d["limit"])] if d["limit"] else []
            argv += ["--cache-dir", d["cache_dir"]] if d["cache_dir"] else []
            argv += ["--threads", str(r["threads"])] if r["threads"] else []
            argv += _device_argv(r)
            argv += [] if t["augment"] else ["--no-augment"]
            argv += ["--quiet"] if r["quiet"] else []
            argv += ["--resume"] if (out / "last.pt").exists() else []
            _verb(argv)
            metrics = json.loads((out / "metrics.json").read_text())
            best = metrics.get("best") or {}
            return {"checkpoint": str(out / "best.pt"), "best_val_acc": best.get("val_acc")}

        return self._stage(1, "train", key, key, ["train/"], work)

    def _sweep_argv(self, base: str, out: Path) -> list[str]:
        s, d, r = self.cfg["sweep"], self.cfg["data"], self.cfg["run"]
        jobs = 1 if r["port"] or r["executor"] == "ray" else r["jobs"]
        argv = ["sweep", "--base", base, "--out", str(out), "--cuts", sweep_list_text(s["cuts"]),
                "--head", sweep_list_text(s["heads"]), "--epochs", str(s["epochs"]),
                "--batch-size", str(s["batch_size"]), "--data", d["spec"], "--jobs", str(jobs)]
        if r["executor"] == "ray":
            argv += ["--executor", "ray", "--ray-address", r["ray_address"] or "auto"]
        argv += ["--magnitude", sweep_list_text(s["magnitude"])] if s["magnitude"] else []
        argv += ["--unfreeze"] if s["unfreeze"] else []
        argv += [] if s["augment"] else ["--no-augment"]
        argv += ["--threads", str(r["threads"])] if r["threads"] else []
        argv += _device_argv(r)
        argv += ["--cache-dir", d["cache_dir"]] if d["cache_dir"] else []
        argv += ["--quiet"] if r["quiet"] else []
        if s["host_only"]:
            return [*argv, "--host-only"]
        argv += ["--board", r["board"], "--bench-runs", str(s["bench_runs"]),
                 "--bench-inputs", str(s["bench_inputs"]),
                 "--calibration-samples", str(self.cfg["quantize"]["calibration_samples"])]
        argv += ["--port", r["port"]] if r["port"] else []
        argv += ["--baud", str(r["baud"])] if r["baud"] else []
        return argv

    def sweep(self, train: dict[str, Any]) -> dict[str, Any] | None:
        s = self.cfg["sweep"]
        if not s["enabled"]:
            print(f"== [2/{len(STAGE_NAMES)}] sweep: off (sweep.enabled = false)")
            return None
        out = self.dir / "sweep"
        # Same base, data and schedule: the sweep dir is kept and extended (more cuts add points to it).
        reset = _key("sweep", self.keys["train"], s["epochs"], s["batch_size"], s["augment"],
                     self.board.name if not s["host_only"] else None)
        key = _key(reset, s, self.cfg["quantize"], self.cfg["run"]["board"])

        def work() -> dict[str, Any]:
            _verb(self._sweep_argv(train["checkpoint"], out))
            failed = json.loads((out / "results.json").read_text())["failed"]
            if failed:  # a point that did not finish: stop here (a rerun retries it)
                ids = ", ".join(r["id"] for r in failed)
                raise TinymlError(f"{len(failed)} sweep point(s) failed ({ids}; see {out}/results.md); "
                                  "rerun the pipeline to retry them")
            # A point whose device output differs from TFLM is reported by the sweep and never selected.
            return {"dir": str(out), "results": str(out / "results.json"), "report": str(out / "results.md")}

        return self._stage(2, "sweep", key, reset, ["sweep/"], work)

    def select(self, train: dict[str, Any], sweep: dict[str, Any] | None) -> dict[str, Any]:
        """The model for the board: the config's point, or the fastest one within the accuracy budget."""
        want = self.cfg["select"]["point"]
        if sweep is None:
            return {"id": "base", "checkpoint": train["checkpoint"], "why": "no sweep: the trained model"}
        rows = json.loads(Path(sweep["results"]).read_text())["points"]
        if want != "best":
            row = next((r for r in rows if r["id"] == want), None)
            if row is None:
                raise TinymlError(f"config {self.cfg.path}: 'select.point' {want!r} is not a sweep point "
                                  f"(points: {', '.join(r['id'] for r in rows)})")
            why = "select.point in the config"
        else:
            row, why = choose_best(rows, self.cfg["select"]["max_drop_pts"])
            print(f"chosen: {row['id']} ({why})", flush=True)
        self._ring_chosen(Path(sweep["results"]), rows, row["id"])
        return {**row, "why": why}

    @staticmethod
    def _ring_chosen(results: Path, rows: list[dict[str, Any]], chosen: str) -> None:
        """Redraw the sweep's charts with the chosen point ringed, once per (sweep result, choice): a rerun
        that reuses both rewrites nothing."""
        from tinyml.sweep.report import write_plots

        marker = results.parent / "chosen.txt"
        stamp = f"{chosen} {results.stat().st_mtime_ns}\n"
        if marker.exists() and marker.read_text() == stamp:
            return
        write_plots(results.parent, rows, chosen=chosen)
        write_text_atomic(marker, stamp)

    def quantize(self, chosen: dict[str, Any]) -> dict[str, Any]:
        ckpt = Path(chosen["checkpoint"])
        name = chosen["id"]
        key = _key("quantize", name, _file_sha(ckpt), self.cfg["quantize"], self.cfg["data"])
        tfl = self.dir / "model" / f"{name}.tflite"

        def work() -> dict[str, Any]:
            src = Path(chosen["tflite"]) if chosen.get("tflite") else None
            if src is not None and src.exists() and src.with_suffix(".json").exists():
                tfl.parent.mkdir(parents=True, exist_ok=True)  # the sweep made and verified it already
                shutil.copyfile(src, tfl)
                shutil.copyfile(src.with_suffix(".json"), tfl.with_suffix(".json"))
                info = json.loads(tfl.with_suffix(".json").read_text())
                print(f"{name}: int8 model from the sweep ({src}), int8 accuracy "
                      f"{info['checks']['int8_accuracy']:.2%} (TFLM)")
                return {"tflite": str(tfl), "int8_acc": info["checks"]["int8_accuracy"], "from": str(src)}
            argv = ["quantize", "--model", str(ckpt), "--out", str(tfl),
                    "--calibration-samples", str(self.cfg["quantize"]["calibration_samples"])]
            argv += ["--cache-dir", self.cfg["data"]["cache_dir"]] if self.cfg["data"]["cache_dir"] else []
            argv += ["--quiet"] if self.cfg["run"]["quiet"] else []
            _verb(argv)
            info = json.loads(tfl.with_suffix(".json").read_text())
            return {"tflite": str(tfl), "int8_acc": info["checks"]["int8_accuracy"], "from": str(ckpt)}

        return self._stage(3, "quantize", key, key, ["model/"], work)

    def export(self, model: dict[str, Any]) -> dict[str, Any]:
        from tinyml.firmware.project import build_project, export_project

        per_layer = self.cfg["bench"]["per_layer"]
        key = _key("export", _file_sha(Path(model["tflite"])), self.board.name, _file_sha(self.board.path),
                   per_layer)
        fw = self.dir / "firmware"

        def work() -> dict[str, Any]:
            project = export_project(model["tflite"], self.board, fw, profile=per_layer)
            fp = build_project(project).footprint
            print(f"built {project.elf}: flash {fp.flash_bytes:,} B of {self.board.flash_size:,} B, "
                  f"RAM {fp.ram_bytes:,} B of {self.board.ram_size:,} B")
            return {"project": str(fw), "elf": str(project.elf), "flash_bytes": fp.flash_bytes,
                    "ram_bytes": fp.ram_bytes}

        return self._stage(4, "export", key, key, ["firmware/"], work)

    def flash(self, fw: dict[str, Any]) -> dict[str, Any]:
        port = self.cfg["run"]["port"]
        key = _key("flash", self.keys["export"], port)

        def work() -> dict[str, Any]:
            if self.board.emulated:
                print(f"{self.board.name} is emulated: QEMU loads {fw['elf']} when the bench boots it")
                return {"emulated": True, "elf": fw["elf"]}
            from tinyml.firmware.project import flash_project

            flash_project(Path(fw["project"]))
            return {"emulated": False, "port": port}

        # Flashing a real board is not a file: it is redone whenever the stages before it ran again.
        return self._stage(5, "flash", key, key, [], work)

    def bench(self, model: dict[str, Any]) -> dict[str, Any]:
        from tinyml.device.bench import bench_model
        from tinyml.device.inputs import load_inputs

        b, r = self.cfg["bench"], self.cfg["run"]
        key = _key("bench", self.keys["flash"], b)

        def work() -> dict[str, Any]:
            tfl = Path(model["tflite"])
            inputs = load_inputs(b["inputs"], tfl) if b["inputs"] else None
            res = bench_model(tfl, self.board, runs=b["runs"], warmup=b["warmup"], inputs=inputs,
                              random=b["random"], per_layer=b["per_layer"], build_dir=self.dir / "firmware",
                              port=r["port"], baud=r["baud"], timeout=float(b["timeout"]),
                              progress=not r["quiet"], cycles=self.board.emulated and not r["port"])
            write_json_atomic(self.dir / "bench.json", res.to_json())
            write_text_atomic(self.dir / "bench.txt", res.summary() + "\n")
            s = res.stats
            return {"json": str(self.dir / "bench.json"), "unit": res.unit, "mean": s["mean"],
                    "p90": s["p90"], "ms": res.ms(s["mean"]), "bit_exact": res.bit_exact,
                    "flash_bytes": res.flash_bytes, "ram_bytes": res.ram_bytes,
                    "est_cycles": res.cycles.mean if res.cycles else None,
                    "est_ms": res.ms(res.cycles.mean) if res.cycles else None,
                    "cycle_rules": res.cycles.rules.name if res.cycles else None}

        return self._stage(6, "bench", key, key, ["bench.json", "bench.txt"], work)

    def finish(self, sweep: dict[str, Any] | None, chosen: dict[str, Any], model: dict[str, Any],
               fw: dict[str, Any], bench: dict[str, Any], seconds: float) -> None:
        """Print the bench, then the sweep table and where the plots are (the last thing a user sees)."""
        from tinyml.sweep.report import terminal_table

        print()
        print((self.dir / "bench.txt").read_text().rstrip())
        rows = json.loads(Path(sweep["results"]).read_text())["points"] if sweep else []
        plots = sorted(Path(sweep["dir"]).glob("acc_vs_*.png")) if sweep else []
        lines = [f"# Pipeline run `{self.dir}`", "",
                 f"Config `{self.cfg.path}`, board `{self.board.name}`. Chosen model: `{chosen['id']}` "
                 f"({chosen.get('why', '')}) -> `{model['tflite']}`, firmware `{fw['project']}`.", "",
                 f"On the board: {bench['mean']:,.0f} {bench['unit']} mean ({bench['ms']:.2f} ms)"
                 + (f", est. {bench['est_cycles']:,.0f} cycles ({bench['est_ms']:.2f} ms; an estimate from "
                    f"the {bench['cycle_rules']} rules, docs/cycle-model.md)"
                    if bench.get("est_cycles") else "")
                 + ", flash "
                 f"{bench['flash_bytes']:,} B, RAM {bench['ram_bytes']:,} B, "
                 f"{'bit-exact with TFLM' if bench['bit_exact'] else 'NOT bit-exact with TFLM'}; "
                 "details in `bench.txt`, `bench.json`.", ""]
        if sweep:
            lines += [f"Sweep: `{sweep['report']}`", ""] + [f"![{p.name}](sweep/{p.name})" for p in plots]
        write_text_atomic(self.dir / "summary.md", "\n".join(lines) + "\n")
        if sweep:
            print(f"\nsweep ({len(rows)} points" + ("" if self.cfg["sweep"]["host_only"] else
                                                   f", measured on {self.board.name}") + "):")
            print(terminal_table(rows))
        print(f"\nchosen for the board: {chosen['id']} ({chosen.get('why', '')})")
        print(f"pipeline finished in {seconds / 60:.1f} min; run directory {self.dir}/")
        if sweep:
            print(f"sweep report: {sweep['report']}")
            print("plots: " + ", ".join(str(p) for p in plots))
        print(f"summary: {self.dir / 'summary.md'}")


def choose_best(rows: list[dict[str, Any]], max_drop_pts: float) -> tuple[dict[str, Any], str]:
    """The fastest (else fewest MACs) point that fits, is bit-exact and loses <= `max_drop_pts` accuracy.

    Accuracy is int8 (TFLM) when the sweep measured it, else float; it is compared with the base point's.
    """
    base = next((r for r in rows if r["method"] == "base"), None)
    if base is None:
        raise TinymlError("the sweep has no base point to compare accuracy with")
    acc = "int8_acc" if base.get("int8_acc") is not None else "val_acc"
    cost = "latency_mean" if base.get("latency_mean") is not None else "macs"
    ok = [r for r in rows if r.get("fits") is not False and r.get("bit_exact") is not False
          and r.get(acc) is not None and r.get(cost) is not None
          and (base.get(acc) is None or (base[acc] - r[acc]) * 100 <= max_drop_pts + 1e-9)]
    if not ok:
        return base, "no point fits and keeps the accuracy: the base model"
    best = min(ok, key=lambda r: (r[cost], -r[acc]))
    what = "latency" if cost == "latency_mean" else "MACs"
    return best, (f"lowest {what} within {max_drop_pts:g} accuracy points of the base "
                  f"({'int8' if acc == 'int8_acc' else 'float'} {best[acc]:.2%} vs {base[acc]:.2%})")
