"""Measure a model on a board over serial, and check every output against TFLM byte for byte.

    result = bench_model("model.tflite", board="cortex-m", runs=10, build_dir="runs/x/fw")
    result.mean, result.bit_exact, result.flash_bytes, result.to_json()

Emulated boards: the model is compiled, exported and built in `build_dir`, QEMU boots it on a free TCP port
and is killed afterwards whatever happens, so calls with different build dirs can run in parallel processes.
Real boards: pass `port` (the board already runs firmware exported for this model).
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tinyml.compile.patch import DEFAULT_OVERHEAD, DEFAULT_SETTING
from tinyml.cycles.firmware import CycleReport
from tinyml.device.inputs import BenchInput, random_inputs
from tinyml.device.protocol import Device, DeviceError, DeviceTimeout
from tinyml.device.transport import Link, LinkClosed, QemuBoard
from tinyml.errors import TinymlError
from tinyml.firmware.boards import DEFAULT_BOARD, Board, load_board
from tinyml.firmware.project import build_project, export_project
from tinyml.report import format_table
from tinyml.util import git_commit

SCHEMA = "tinyml.bench/1"
DEFAULT_RUNS = 10
DEFAULT_WARMUP = 1
DEFAULT_RANDOM_INPUTS = 3
MAX_RUNS_PER_REQUEST = 127  # (PROTO_MAX_PAYLOAD - 2) / 8


def _stats(values: Sequence[float]) -> dict[str, float]:
    c = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(c.mean()),
        "std": float(c.std()),
        "min": float(c.min()),
        "p50": float(np.percentile(c, 50)),
        "p90": float(np.percentile(c, 90)),
        "max": float(c.max()),
    }


@dataclass(frozen=True)
class InputResult:
    name: str
    counts: tuple[int, ...]
    output: bytes
    expected: bytes  # TFLM's output for the same input

    @property
    def bit_exact(self) -> bool:
        return self.output == self.expected

    def mismatch(self) -> str:
        dev, ref = np.frombuffer(self.output, np.int8), np.frombuffer(self.expected, np.int8)
        if dev.size != ref.size:
            return f"{self.name}: device returned {dev.size} bytes, TFLM {ref.size}"
        bad = np.flatnonzero(dev != ref)
        worst = int(np.abs(dev.astype(int) - ref.astype(int)).max())
        return (
            f"{self.name}: {bad.size} of {dev.size} output bytes differ (first at index {bad[0]}: device "
            f"{dev[bad[0]]}, TFLM {ref[bad[0]]}; largest difference {worst} LSB); device {dev[:8].tolist()} "
            f"vs TFLM {ref[:8].tolist()}"
        )


@dataclass(frozen=True)
class LayerResult:
    index: int
    op: str
    kernel: str
    macs: int
    count: int

    @property
    def per_mac(self) -> float | None:
        return self.count / self.macs if self.macs else None


@dataclass(frozen=True)
class BenchResult:
    board: str
    model: str
    model_path: str
    model_sha256: str
    unit: str  # "instructions" (QEMU, exact) or "cycles" (DWT on silicon)
    clock_hz: int
    emulated: bool
    warmup: int
    runs_per_input: int
    inputs: tuple[InputResult, ...]
    flash_bytes: int
    ram_bytes: int
    flash_size: int
    ram_size: int
    arena_bytes: int
    stack_peak_bytes: int
    per_layer: tuple[LayerResult, ...] | None
    stack_bytes: int = 0  # the stack reservation (derived at build time from -fstack-usage + the call graph)
    device: dict[str, str] = field(default_factory=dict, hash=False)
    wall_s: float = 0.0
    warnings: tuple[str, ...] = ()  # layers running plain-C kernels on a DSP core
    cycles: CycleReport | None = None  # estimated cycles (--cycles, emulated boards)
    patch: dict | None = None  # the compiler's patch choice (compile.patch.report); None: not known

    @property
    def counts(self) -> list[int]:
        return [c for r in self.inputs for c in r.counts]

    @property
    def bit_exact(self) -> bool:
        return all(r.bit_exact for r in self.inputs)

    @property
    def stats(self) -> dict[str, float]:
        return _stats(self.counts)

    @property
    def mean(self) -> float:
        return self.stats["mean"]

    def ms(self, count: float) -> float:
        """A count at the board clock, in milliseconds (for instructions: as if one per cycle)."""
        return count / self.clock_hz * 1e3

    def to_json(self) -> dict:
        """The `--json` document; its schema is documented in docs/guide.md (section bench)."""
        s = self.stats
        doc = {
            "schema": SCHEMA,
            "board": self.board,
            "emulated": self.emulated,
            "model": self.model,
            "model_path": self.model_path,
            "model_sha256": self.model_sha256,
            "unit": self.unit,
            "clock_hz": self.clock_hz,
            "warmup": self.warmup,
            "runs_per_input": self.runs_per_input,
            "runs": self.counts,
            **{k: (int(v) if k in ("min", "max") else v) for k, v in s.items()},
            "ms": {k: self.ms(v) for k, v in s.items()},
            "outputs": [r.output.hex() for r in self.inputs],
            "bit_exact": self.bit_exact,
            "inputs": [
                {
                    "name": r.name,
                    "runs": list(r.counts),
                    "output": r.output.hex(),
                    "expected": r.expected.hex(),
                    "bit_exact": r.bit_exact,
                }
                for r in self.inputs
            ],
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "flash_size": self.flash_size,
            "ram_size": self.ram_size,
            "arena_bytes": self.arena_bytes,
            "stack_bytes": self.stack_bytes,
            "stack_peak_bytes": self.stack_peak_bytes,
            "patch": self.patch,
            "ram_breakdown": {
                "arena_bytes": self.arena_bytes,
                "stack_bytes": self.stack_bytes,
                "runtime_bytes": self.ram_bytes - self.arena_bytes - self.stack_bytes,
            },
            "est_cycles": None if self.cycles is None else self.cycles.to_json(),
            "cycle_model": None if self.cycles is None else self.cycles.model_json(),
            "per_layer": None
            if self.per_layer is None
            else [
                {
                    "index": la.index,
                    "op": la.op,
                    "kernel": la.kernel,
                    "macs": la.macs,
                    "count": la.count,
                    "per_mac": la.per_mac,
                    "ms": self.ms(la.count),
                    **self._layer_cycles(i, la),
                }
                for i, la in enumerate(self.per_layer)
            ],
            "cflags": self.device.get("cflags", ""),
            "compiler": self.device.get("compiler", ""),
            "device": self.device,
            "tinyml_commit": git_commit(),
            "warnings": list(self.warnings),
            "wall_s": round(self.wall_s, 3),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return doc

    def _layer_cycles(self, i: int, la: LayerResult) -> dict:
        if self.cycles is None or self.cycles.layers is None:
            return {}
        c = self.cycles.layers[i]
        return {"est_cycles": c, "est_cycles_per_mac": c / la.macs if la.macs else None, "est_ms": self.ms(c)}

    def summary(self) -> str:
        """The human-readable report: latency, memory, exactness (and the per-layer table when measured)."""
        s = self.stats
        unit = self.unit
        rows = [
            {"": unit, **{k: int(round(v)) for k, v in s.items()}},
            {"": f"ms @ {self.clock_hz / 1e6:g} MHz", **{k: round(self.ms(v), 3) for k, v in s.items()}},
        ]
        if self.cycles is not None:
            rows += self._cycle_rows()
        lines = [
            f"{self.model} on {self.board}: {len(self.counts)} runs ({len(self.inputs)} inputs x "
            f"{self.runs_per_input}, {self.warmup} warm-up)"
            + (" [emulated: counts are exact instructions]" if self.emulated else ""),
            format_table(rows),
            f"flash {self.flash_bytes:,} B of {self.flash_size:,} B; RAM {self.ram_bytes:,} B of "
            f"{self.ram_size:,} B (linked: arena {self.arena_bytes:,} B with the input and output + stack "
            f"{self.stack_bytes:,} B derived, {self.stack_peak_bytes:,} B used + runtime "
            f"{self.ram_bytes - self.arena_bytes - self.stack_bytes:,} B)",
            f"outputs vs TFLM: {sum(r.bit_exact for r in self.inputs)}/{len(self.inputs)} bit-exact",
        ]
        if self.patch:
            from tinyml.compile.patch import report_line

            lines.insert(3, report_line(self.patch))
        lines += [f"warning: {w}" for w in self.warnings]
        if self.cycles is not None:
            lines += self._cycle_notes()
        if self.per_layer:
            lines += ["", self.layer_table()]
        return "\n".join(lines)

    def _cycle_rows(self) -> list[dict]:
        cy = self.cycles
        s = _stats(cy.runs)
        mhz = f"{self.clock_hz / 1e6:g} MHz"
        rows = [{"": "est. cycles", **{k: int(round(v)) for k, v in s.items()}},
                {"": f"est. ms @ {mhz}", **{k: round(self.ms(v), 3) for k, v in s.items()}}]
        if cy.wait_states is not None:
            rows.append({"": f"est. cycles, {cy.wait_states} WS bound",
                         **{k: int(round(v if k == "std" else cy.upper_bound(v))) for k, v in s.items()}})
        return rows

    def _cycle_notes(self) -> list[str]:
        cy = self.cycles
        lo, hi = cy.band
        lines = [
            f"est. cycles: an estimate, not a measurement: exact per-instruction counts (QEMU plugin) x "
            f"{cy.rules.name} rules, zero wait states, taken-branch refill P = 2 (P = 1..3: {lo:,.0f} .. "
            f"{hi:,.0f}); {cy.mean / max(self.mean, 1):.2f} cycles per instruction",
        ]
        if cy.wait_states is not None:
            lines.append(f"  {cy.wait_states} WS bound: + {cy.wait_states} cycles on each of "
                         f"{cy.flash_reads:,.0f} data reads from flash per run (instruction fetches assumed "
                         "cached)")
        lines += [f"  approximated: {a}" for a in cy.rules.approximated]
        total = sum(c for _, c, _ in cy.functions) or 1
        rows = [{"function": n, "est. cycles": int(round(c)), "instructions": int(round(i)),
                 "cycles/instr": round(c / i, 2) if i else None, "%": round(100 * c / total, 1)}
                for n, c, i in cy.functions[:15]]
        return lines + ["", "est. cycles per function (mean per run):", format_table(rows)]

    def layer_table(self) -> str:
        total = sum(la.count for la in self.per_layer or ()) or 1
        per = "instr/MAC" if self.unit == "instructions" else "cycles/MAC"
        rows = [
            {
                "#": la.index,
                "op": la.op,
                "kernel": la.kernel or "-",
                "MACs": la.macs,
                self.unit: la.count,
                "ms": round(self.ms(la.count), 3),
                per: None if la.per_mac is None else round(la.per_mac, 2),
                **self._layer_cycle_cells(i, la),
                "%": round(100 * la.count / total, 1),
            }
            for i, la in enumerate(self.per_layer or ())
        ]
        macs = sum(la.macs for la in self.per_layer or ())
        rows.append(
            {
                "#": "",
                "op": "total",
                "kernel": "",
                "MACs": macs,
                self.unit: total,
                "ms": round(self.ms(total), 3),
                per: round(total / macs, 2) if macs else None,
                **self._layer_cycle_cells(None, None),
                "%": 100.0,
            }
        )
        return format_table(rows)

    def _layer_cycle_cells(self, i: int | None, la: LayerResult | None) -> dict:
        """est. cycles and cycles/MAC columns of the per-layer table (i None: the total row)."""
        if self.cycles is None or self.cycles.layers is None:
            return {}
        layers = self.cycles.layers
        if i is None:
            c, macs = sum(layers), sum(la.macs for la in self.per_layer or ())
        else:
            c, macs = layers[i], la.macs
        return {"est. cycles": int(round(c)), "est. ms": round(self.ms(c), 3),
                "cycles/MAC": round(c / macs, 2) if macs else None}


def default_build_dir(model: Path, board: Board, per_layer: bool, patch: str | int = DEFAULT_SETTING,
                      defines: Sequence[str] = ()) -> Path:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:8]
    tag = "" if str(patch) == DEFAULT_SETTING else f"-patch{patch}"
    if defines:  # a dump build (find-layer) or a test build never shares a directory with the normal one
        tag += "-" + hashlib.sha256(" ".join(defines).encode()).hexdigest()[:6]
    return (
        Path("build")
        / "tinyml-bench"
        / f"{board.name}-{model.stem}-{digest}{tag}{'-profile' if per_layer else ''}"
    )


@contextmanager
def _locked(build_dir: Path) -> Iterator[None]:
    """One export+build at a time per build directory, even across processes."""
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def build_firmware(
    model: str | Path,
    board: str | Board = DEFAULT_BOARD,
    build_dir: str | Path | None = None,
    per_layer: bool = False,
    patch: str | int = DEFAULT_SETTING,
    patch_overhead: float | None = None,
    defines: Sequence[str] = (),
) -> Path:
    """Export and build the firmware for `model` on `board` (incrementally); returns the ELF.
    `defines`: extra C macros (TINYML_DEBUG: the layer dumps of find-layer; see export_project)."""
    model = Path(model)
    board = load_board(board) if isinstance(board, str) else board
    out = Path(build_dir) if build_dir else default_build_dir(model, board, per_layer, patch, defines)
    with _locked(out):
        project = export_project(model, board, out, profile=per_layer, patch=patch,
                                 patch_overhead=patch_overhead, defines=defines)
        return build_project(project).elf


def bench_model(
    model: str | Path,
    board: str | Board = DEFAULT_BOARD,
    *,
    runs: int = DEFAULT_RUNS,
    warmup: int = DEFAULT_WARMUP,
    inputs: Sequence[BenchInput | np.ndarray] | None = None,
    random: int = DEFAULT_RANDOM_INPUTS,
    seed: int = 0,
    per_layer: bool = False,
    build_dir: str | Path | None = None,
    port: str | None = None,
    baud: int | None = None,
    timeout: float = 60.0,
    progress: bool = False,
    cycles: bool = False,
    flash_wait_states: int | None = None,
    patch: str | int = DEFAULT_SETTING,
    patch_overhead: float | None = None,
    defines: Sequence[str] = (),
) -> BenchResult:
    """Build (emulated boards) or connect (`port`), run every input `warmup + runs` times, compare with TFLM.

    Raises TinymlError for anything that stops the measurement (no device, timeout, crash, model too big);
    a device output that differs from TFLM does not raise: it shows in `bit_exact` and `inputs[i].mismatch()`.
    `cycles` (emulated boards) also runs the cycle profiler and adds estimated cycles (`result.cycles`),
    with a flash-wait-state upper bound when the board file (or `flash_wait_states`) gives wait states.
    `defines`: extra C macros for the firmware (tests break a layer on purpose with them).
    `patch` / `patch_overhead`: as `tinyml compile --patch` (with `port`: what the flashed firmware was
    exported with); the choice is reported in `result.patch`, and a patched stage is one per-layer entry.
    """
    from tinyml.compile import analyze
    from tinyml.compile.patch import report
    from tinyml.tflm import TflmReference

    t0 = time.monotonic()
    model = Path(model)
    if not model.is_file():
        raise TinymlError(f"{model}: no such model file")
    if runs < 1 or warmup < 0:
        raise TinymlError(f"runs must be >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
    model_bytes = model.read_bytes()
    ref = TflmReference(model_bytes)
    nbytes = int(np.prod(ref.input_details["shape"]))
    cases = _as_inputs(inputs, nbytes) if inputs is not None else random_inputs(random, nbytes, seed)
    if not cases:
        raise TinymlError("no inputs to run (give --input files or --random N with N >= 1)")
    board = load_board(board) if isinstance(board, str) else board
    compiled = analyze(model, patch_setting=patch,
                       overhead=DEFAULT_OVERHEAD if patch_overhead is None else patch_overhead)
    session = _Session(model, model_bytes, ref, cases, runs, warmup, per_layer, timeout, progress)
    if port is not None:
        if cycles:
            raise TinymlError("--cycles needs an emulated board (on silicon the counts already are cycles)")
        with Link(port, baud or board.baud) as link:
            result = session.run(Device(link, timeout=timeout), link.name)
    elif cycles:
        result = _run_profiled(session, board, build_firmware(model, board, build_dir, per_layer, patch,
                                                              patch_overhead, defines), flash_wait_states)
    else:
        if not board.emulated:
            raise TinymlError(
                f"board {board.name} is a real board: flash it (`make flash` in a project from "
                f"`tinyml export`) and pass --port (e.g. /dev/ttyACM0)"
            )
        result = _run_qemu(session, board, build_firmware(model, board, build_dir, per_layer, patch,
                                                          patch_overhead, defines))
    if port is not None:  # a real board: judge its kernels by the board its firmware says it is
        try:
            board = load_board(result.board)
        except TinymlError:
            pass
    result = _merge_stage(result, compiled)
    return replace(result, wall_s=time.monotonic() - t0, warnings=tuple(_fallbacks(compiled.layers, board)),
                   patch=report(compiled))


def _merge_stage(result: BenchResult, c) -> BenchResult:
    """A patched stage runs its layers band by band, interleaved: its time is one entry, named after the
    layers inside it (the device reports it at the stage's last layer, the others near 0)."""
    if c.patch is None or result.per_layer is None:
        return result
    from tinyml.compile.patch import stage_name

    s = c.patch.stage
    inside = result.per_layer[:s]
    stage = LayerResult(inside[0].index, stage_name(list(c.layers), c.patch),
                        "+".join(dict.fromkeys(la.kernel for la in inside)), sum(la.macs for la in inside),
                        sum(la.count for la in inside))
    cycles = result.cycles
    if cycles is not None and cycles.layers is not None:
        cycles = replace(cycles, layers=(sum(cycles.layers[:s]), *cycles.layers[s:]))
    return replace(result, per_layer=(stage, *result.per_layer[s:]), cycles=cycles)


def _run_qemu(session: _Session, board: Board, elf: Path, extra_args: Sequence[str] = ()) -> BenchResult:
    with QemuBoard(board, elf, extra_args=extra_args) as qemu:
        try:
            with Link(qemu.url) as link:
                device = Device(link, timeout=session.timeout)  # every request honours --timeout
                result = session.run(device, f"{board.name} (QEMU {board.qemu_machine})")
                device.exit()
        except (LinkClosed, DeviceTimeout) as e:
            qemu.wait(1.0)
            raise TinymlError(f"{e}; {qemu.status()}") from None
        if extra_args and qemu.wait(session.timeout) is None:
            raise TinymlError(f"QEMU did not exit after EXIT: no cycle profile ({qemu.status()})")
    return result


def _run_profiled(session: _Session, board: Board, elf: Path, wait_states: int | None) -> BenchResult:
    """The same session under the cycle profiler: exact counts per address, priced by the core's rules."""
    import tempfile

    from tinyml.cycles.firmware import analyse, firmware_marks, handler_ranges
    from tinyml.cycles.model import rules_for
    from tinyml.cycles.plugin import plugin_args
    from tinyml.cycles.profile import read_profile

    rules = rules_for(board.mcpu)
    with tempfile.TemporaryDirectory(prefix="tinyml-cycles-") as tmp:
        out = Path(tmp) / "profile.txt"
        flash = (board.flash_base, board.flash_base + board.flash_size)
        args = plugin_args(out, firmware_marks(elf, session.per_layer), flash, handler_ranges(elf))
        result = _run_qemu(session, board, elf, args)
        profile = read_profile(out)
    ws = board.flash_wait_states if wait_states is None else wait_states
    report = analyse(profile, elf, rules, inputs=len(session.cases), warmup=session.warmup, runs=session.runs,
                     layers=len(result.per_layer) if result.per_layer is not None else None, wait_states=ws)
    return replace(result, cycles=report)


def _fallbacks(layers, board: Board) -> list[str]:
    """The compiler's kernel choice per layer, checked against the board's DSP extension."""
    from tinyml.firmware.project import dsp_fallback_warnings

    layers = [{"index": la.index, "op": la.op, "kernel": la.kernel, "macs": la.macs} for la in layers]
    return dsp_fallback_warnings(layers, board)


def _check_stack(info: dict[str, str], where: str) -> None:
    """The painted stack's watermark must stay inside the derived reservation: reaching its end means the
    derivation missed something (and memory below the stack may be corrupt), so the bench fails loudly."""
    peak, size = int(info.get("stack_peak_bytes", 0)), int(info.get("stack_bytes", 0))
    if size and peak >= size:
        raise TinymlError(
            f"{where}: the stack watermark reached the end of its {size:,} B reservation (peak {peak:,} B): "
            "the derived worst case is wrong; results discarded"
        )


def _as_inputs(inputs: Sequence[BenchInput | np.ndarray], nbytes: int) -> list[BenchInput]:
    out = []
    for i, x in enumerate(inputs):
        case = x if isinstance(x, BenchInput) else BenchInput(f"input #{i}", np.asarray(x).reshape(-1))
        if case.data.dtype != np.int8 or case.data.size != nbytes:
            raise TinymlError(
                f"input {case.name}: need {nbytes} int8 values, got {case.data.size} {case.data.dtype}"
            )
        out.append(case)
    return out


@dataclass
class _Session:
    model: Path
    model_bytes: bytes
    ref: object
    cases: list[BenchInput]
    runs: int
    warmup: int
    per_layer: bool
    timeout: float
    progress: bool

    def run(self, dev: Device, where: str) -> BenchResult:
        dev.hello()
        info = dev.info()
        self._check_device(info, where)
        out_bytes = int(info["output_bytes"])
        run_wall = self.timeout  # until the first run says how long one takes
        results = []
        cases = self.cases
        if self.progress:
            from tqdm import tqdm

            cases = tqdm(cases, desc=f"bench {self.model.stem}", unit="input", leave=False)
        # A model whose plan reuses its input's bytes (input_preserved=0) gets the input before every run.
        refill = info.get("input_preserved", "1") == "0"
        for case in cases:
            data = case.data.tobytes()
            dev.set_input(data)
            t = time.monotonic()
            first = dev.invoke(1, timeout=self.timeout)
            run_wall = max(time.monotonic() - t, 1e-3)
            counts = first if self.warmup == 0 else []
            self._invoke(dev, max(self.warmup - 1, 0), run_wall, data if refill else None)
            counts += self._invoke(dev, self.runs - len(counts), run_wall, data if refill else None)
            output = dev.get_output(out_bytes)
            expected = np.asarray(self.ref.invoke(case.data), dtype=np.int8).tobytes()
            results.append(InputResult(case.name, tuple(counts), output, expected))
        if self.per_layer:
            dev.set_input(self.cases[-1].data.tobytes())
        layers = self._profile(dev, run_wall) if self.per_layer else None
        info = dev.info()  # again: the stack peak now includes the inferences
        _check_stack(info, where)
        return BenchResult(
            board=info["board"],
            model=info["model"],
            model_path=str(self.model),
            model_sha256=info["model_sha256"],
            unit=info["unit"],
            clock_hz=int(info["clock_hz"]),
            emulated=info["unit"] == "instructions",
            warmup=self.warmup,
            runs_per_input=self.runs,
            inputs=tuple(results),
            flash_bytes=int(info["flash_bytes"]),
            ram_bytes=int(info["ram_bytes"]),
            flash_size=int(info["flash_size"]),
            ram_size=int(info["ram_size"]),
            arena_bytes=int(info["arena_bytes"]),
            stack_peak_bytes=int(info["stack_peak_bytes"]),
            stack_bytes=int(info["stack_bytes"]),
            per_layer=layers,
            device=info,
        )

    def _invoke(self, dev: Device, runs: int, run_wall: float, refill: bytes | None) -> list[int]:
        """`runs` timed inferences; with `refill`, one per request, each after writing that input again."""
        counts: list[int] = []
        while len(counts) < runs:
            n = 1 if refill is not None else min(MAX_RUNS_PER_REQUEST, runs - len(counts))
            if refill is not None:
                dev.set_input(refill)
            counts += dev.invoke(n, timeout=self.timeout + 4 * n * run_wall)
        return counts

    def _check_device(self, info: dict[str, str], where: str) -> None:
        sha = hashlib.sha256(self.model_bytes).hexdigest()
        if info.get("model_sha256") != sha:
            raise TinymlError(
                f"{where} runs model '{info.get('model')}' (sha256 {info.get('model_sha256', '?')[:12]}), "
                f"not {self.model.name} (sha256 {sha[:12]}): export and flash this model first"
            )
        if int(info.get("input_bytes", -1)) != self.cases[0].data.size:
            raise TinymlError(
                f"{where} expects {info.get('input_bytes')} input bytes, the model takes "
                f"{self.cases[0].data.size}"
            )

    def _profile(self, dev: Device, run_wall: float) -> tuple[LayerResult, ...]:
        from tinyml.compile import analyze

        try:
            counts = dev.profile(timeout=self.timeout + 4 * run_wall)
        except DeviceError as e:
            raise TinymlError(f"{e} (the firmware was built without --per-layer / --profile)") from None
        layers = analyze(self.model).layers
        if len(layers) != len(counts):
            raise TinymlError(f"device profiled {len(counts)} layers, the model has {len(layers)}")
        return tuple(
            LayerResult(la.index, la.op, la.kernel or "", la.macs, c) for la, c in zip(layers, counts)
        )
