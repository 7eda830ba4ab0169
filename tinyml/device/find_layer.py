"""`tinyml bench --find-layer`: which layer goes wrong on the device, when its output differs from TFLM's.

    r = find_layer("model.tflite", "cortex-m", x)      # x: one int8 input (the one that mismatched)
    r.comparison.first         # LayerDiff (index, op, tensor, differing bytes, largest difference) or None

The firmware is rebuilt with TINYML_DEBUG: the generated model then calls tinyml_debug_tensor() after every
layer, and the firmware's DUMP command runs one inference sending each layer's output over serial (MSG_TENSOR
frames, CRC-checked like every frame). A normal build has none of this: not one instruction. The outputs are
compared in execution order with TFLM's preserved tensors, by the same code as `tinyml verify` on the host.
Inner layers of a patch stage (--patch) never exist whole, so the stage's output layer stands for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.compile.patch import DEFAULT_SETTING
from tinyml.compile.verify_cli import LayerComparison, compare_layers
from tinyml.device.bench import _check_stack, _run_qemu, _Session, build_firmware
from tinyml.device.inputs import BenchInput
from tinyml.device.protocol import Device
from tinyml.device.transport import Link
from tinyml.errors import TinymlError
from tinyml.firmware.boards import DEFAULT_BOARD, Board, load_board
from tinyml.firmware.project import DUMP_DEFINE


@dataclass(frozen=True)
class FindLayerResult:
    board: str
    input_name: str
    layers: int  # layers in the model
    comparison: LayerComparison
    output_equal: bool  # the dump run's final output against TFLM's

    def summary(self) -> str:
        cmp, first = self.comparison, self.comparison.first
        lines = [f"find-layer on {self.board}, input {self.input_name} (every layer's output from the device "
                 f"vs TFLM's tensors):"]
        if cmp.unobservable:
            stage_out = cmp.compared[0] if cmp.compared else "?"
            lines.append(f"  layers {_span(cmp.unobservable)} run inside the patch stage (row bands): their "
                         f"outputs never exist whole and are not observable; the stage's output, layer "
                         f"{stage_out}, is compared in their place")
        if first is None:
            lines.append(f"  all {len(cmp.compared)} compared layers equal TFLM's"
                         + ("" if self.output_equal else " (yet the output differs: the final copy?)"))
            return "\n".join(lines)
        before = cmp.compared[:-1]
        if before:
            lines.append(f"  layers {_span(before)} equal TFLM's")
        lines.append(f"  FIRST DIFFERING: {first.describe()}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        cmp = self.comparison
        return {
            "board": self.board,
            "input": self.input_name,
            "layers": self.layers,
            "compared": list(cmp.compared),
            "unobservable": list(cmp.unobservable),
            "first_differing": None if cmp.first is None else cmp.first.to_json(),
            "output_equal": self.output_equal,
        }


def _span(indices: Sequence[int]) -> str:
    return f"{indices[0]}..{indices[-1]}" if len(indices) > 1 else str(indices[0])


class _DumpSession(_Session):
    """One input with every layer's output sent back (the bench session's device checks, another run)."""

    def run(self, dev: Device, where: str) -> dict[int, bytes]:  # type: ignore[override]
        dev.hello()
        info = dev.info()
        self._check_device(info, where)
        if info.get("dump") != "1":
            raise TinymlError(
                f"{where} runs firmware built without layer dumps: export it with `tinyml export "
                f"--dump-layers`, flash it and run again (emulated boards are rebuilt by --find-layer)"
            )
        dev.set_input(self.cases[0].data.tobytes())
        frames = dev.dump(timeout=self.timeout)
        frames[-1] = dev.get_output(int(info["output_bytes"]))
        _check_stack(dev.info(), where)  # the dump hook sends from inside the model: a deeper stack
        return frames


def find_layer(
    model: str | Path,
    board: str | Board = DEFAULT_BOARD,
    x: BenchInput | np.ndarray | None = None,
    *,
    build_dir: str | Path | None = None,
    port: str | None = None,
    baud: int | None = None,
    timeout: float = 60.0,
    patch: str | int = DEFAULT_SETTING,
    patch_overhead: float | None = None,
    defines: Sequence[str] = (),
) -> FindLayerResult:
    """Run input `x` on firmware built with layer dumps (emulated: built here; `port`: a board already
    flashed with `tinyml export --dump-layers`) and name the first layer whose output differs from TFLM's.
    `defines`: more C macros for the dump build (tests break a layer on purpose with them)."""
    from tinyml.compile import analyze
    from tinyml.compile.patch import DEFAULT_OVERHEAD
    from tinyml.tflm import TflmReference

    model = Path(model)
    if not model.is_file():
        raise TinymlError(f"{model}: no such model file")
    board = load_board(board) if isinstance(board, str) else board
    c = analyze(model, patch_setting=patch, overhead=DEFAULT_OVERHEAD if patch_overhead is None
                else patch_overhead)
    t_in = c.model.tensors[c.model.inputs[0]]
    case = x if isinstance(x, BenchInput) else BenchInput(
        "#0", np.zeros(t_in.nbytes, np.int8) if x is None else np.asarray(x, np.int8).reshape(-1))
    if case.data.dtype != np.int8 or case.data.size != t_in.nbytes:
        raise TinymlError(f"input {case.name}: need {t_in.nbytes} int8 values, got {case.data.size}")
    session = _DumpSession(model, model.read_bytes(), None, [case], 1, 0, False, timeout, False)
    if port is not None:
        with Link(port, baud or board.baud) as link:
            frames, where = session.run(Device(link, timeout=timeout), link.name), link.name
    elif not board.emulated:
        raise TinymlError(f"board {board.name} is a real board: flash firmware from `tinyml export "
                          f"--dump-layers` and pass --port")
    else:
        elf = build_firmware(model, board, build_dir, False, patch, patch_overhead, (DUMP_DEFINE, *defines))
        where = f"{board.name} (QEMU {board.qemu_machine})"
        frames = _run_qemu(session, board, elf)
    output = frames.pop(-1)
    want = np.asarray(TflmReference(c.model.data).invoke(case.data), np.int8).tobytes()
    cmp = compare_layers(c, {k: np.frombuffer(v, np.int8) for k, v in frames.items()}, case.data)
    return FindLayerResult(where, case.name, len(c.layers), cmp, output == want)
