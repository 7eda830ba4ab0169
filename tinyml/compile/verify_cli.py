"""`tinyml verify MODEL.tflite [--inputs N]`: compiled C (host cc) vs the TFLM interpreter, byte for byte.

Runs N random inputs (plus the shared person/no-person images when the model takes 96x96x1), prints
"bit-exact K/N", and on a mismatch names the first layer whose output differs (per-layer dumps vs TFLM with
all tensors preserved). Exit status 0 only when every output matches.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyml.cliargs import add_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model(p, "full-int8 .tflite file", "MODEL.tflite")
    p.add_argument(
        "--inputs", type=int, default=50, metavar="N", help="random inputs to compare (default 50)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--keep", metavar="DIR", help="keep the generated C and host build in DIR")


@dataclass(frozen=True)
class VerifyResult:
    total: int
    exact: int
    first_bad_input: int | None
    first_bad_layer: str | None  # description of the first differing layer, when there is a mismatch


def verify(
    model_path: str | Path,
    n_random: int = 50,
    seed: int = 0,
    workdir: str | Path | None = None,
    progress: bool = True,
) -> VerifyResult:
    from tqdm import tqdm

    from tinyml.compile import compile_tflite, host
    from tinyml.tflm import TflmReference

    with tempfile.TemporaryDirectory(prefix="tinyml-verify-") as tmp:
        work = Path(workdir) if workdir else Path(tmp)
        c = compile_tflite(model_path, work / "model", "model")
        exe = host.build(work / "model", "model", work / "host_model")
        ref = TflmReference(c.model.data)
        xs = _inputs(c, n_random, seed)
        ys = host.run(exe, xs, c.model.tensors[c.model.outputs[0]].nbytes)
        want = np.stack(
            [
                ref.invoke(x).reshape(-1).view(np.int8)
                for x in tqdm(xs, desc="TFLM", unit="input", disable=not progress, leave=False)
            ]
        )
        ok = (ys == want).all(axis=1)
        if ok.all():
            return VerifyResult(len(xs), len(xs), None, None)
        bad = int(np.argmax(~ok))
        return VerifyResult(len(xs), int(ok.sum()), bad, first_bad_layer(c, exe.parent, xs[bad]))


def _inputs(c, n_random: int, seed: int) -> np.ndarray:
    from tinyml.util import examples_dir

    t_in = c.model.tensors[c.model.inputs[0]]
    rng = np.random.default_rng(seed)
    xs = [rng.integers(-128, 128, size=t_in.nbytes, dtype=np.int8) for _ in range(n_random)]
    if tuple(t_in.shape) == (1, 96, 96, 1):
        for f in sorted((examples_dir() / "images").glob("*_image_data.u8.bin")):
            # TFLM's person_detection test copies the image bytes unchanged into the int8 tensor
            xs.append(np.frombuffer(f.read_bytes(), dtype=np.int8)[: t_in.nbytes])
    return np.stack(xs) if xs else np.zeros((0, t_in.nbytes), np.int8)


def first_bad_layer(c, work: Path, x: np.ndarray) -> str:
    """Re-run one input with per-layer dumps; compare every layer's output with TFLM's preserved tensors."""
    from tinyml.compile import host

    exe = host.build(work / "model", "model", work / "host_model_debug", debug=True)
    cmp = compare_layers(c, host.run_debug(exe, x), x)
    if cmp.first is None:
        return "no layer differs in the per-layer dump (the difference is in the final copy)"
    return cmp.first.describe()


@dataclass(frozen=True)
class LayerDiff:
    """One layer's dumped output against TFLM's tensor (differing = -1: no comparable output)."""

    index: int
    op: str
    summary: str
    tensor: int
    name: str
    differing: int
    size: int
    max_diff: int
    first_byte: int

    def describe(self) -> str:
        shape = self.summary.split(";")[0]
        where = f"layer {self.index} ({self.op} {shape}, tensor {self.tensor} '{self.name}')"
        if self.differing < 0:
            return f"layer {self.index} ({self.op}): no comparable output"
        return (
            f"{where}: {self.differing} of {self.size} bytes differ, largest difference {self.max_diff} LSB, "
            f"first at byte {self.first_byte}"
        )

    def to_json(self) -> dict:
        return {"index": self.index, "op": self.op, "tensor": self.tensor, "tensor_name": self.name,
                "differing_bytes": self.differing, "bytes": self.size, "max_abs_diff": self.max_diff,
                "first_byte": self.first_byte}


@dataclass(frozen=True)
class LayerComparison:
    first: LayerDiff | None  # the first layer whose output differs from TFLM's (None: all compared equal)
    compared: tuple[int, ...]  # layer indices compared, in order, up to and including the first differing one
    unobservable: tuple[int, ...]  # inner layers of a patch stage: their full outputs never exist


def compare_layers(c, frames: dict[int, np.ndarray | bytes], x: np.ndarray) -> LayerComparison:
    """Every layer's dumped output (layer index -> int8 bytes, from the host harness or a device) against
    TFLM with all tensors preserved, in execution order. The inner layers of a patch stage are never whole
    in memory, so they have no dump; the stage's last layer is compared in their place."""
    from tinyml.tflm import TflmReference

    ref = TflmReference(c.model.data, preserve_all_tensors=True)
    ref.invoke(x)
    stage = c.patch.stage if c.patch else 0
    compared: list[int] = []
    unobservable = tuple(la.index for la in c.layers[: max(stage - 1, 0)])
    for la in c.layers[max(stage - 1, 0) :]:
        want = ref.tensor(la.output).reshape(-1).view(np.int8)
        got = frames.get(la.index)
        got = None if got is None else np.frombuffer(bytes(got), np.int8)
        compared.append(la.index)
        name = c.model.tensors[la.output].name
        if got is None or got.shape != want.shape:
            diff = LayerDiff(la.index, la.op, la.summary, la.output, name, -1, want.size, 0, 0)
            return LayerComparison(diff, tuple(compared), unobservable)
        d = np.abs(got.astype(np.int32) - want.astype(np.int32))
        if d.any():
            diff = LayerDiff(la.index, la.op, la.summary, la.output, name, int((d > 0).sum()), d.size,
                             int(d.max()), int(np.argmax(d > 0)))
            return LayerComparison(diff, tuple(compared), unobservable)
    return LayerComparison(None, tuple(compared), unobservable)


def run(args: argparse.Namespace) -> int:
    from tinyml.errors import TinymlError

    if args.inputs < 0:
        raise TinymlError("--inputs must be >= 0")
    r = verify(args.model, args.inputs, args.seed, args.keep)
    n_img = r.total - args.inputs
    extra = "" if n_img == 0 else f" ({args.inputs} random + {n_img} reference images)"
    print(f"{args.model}: bit-exact {r.exact}/{r.total}{extra}")
    if r.first_bad_input is not None:
        print(f"first mismatch on input {r.first_bad_input}; first differing {r.first_bad_layer}")
        return 1
    return 0
