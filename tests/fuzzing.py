"""Structure-aware fuzzing of the compiler front-end and of compiled models (tests/test_fuzz.py, `make fuzz`).

`Mutator` unpacks a real .tflite with the TFLite schema's object API, flips one to three fields that
matter (shapes, types, buffers and their bytes, quantization, op codes, op inputs/outputs, builtin options,
the model's inputs/outputs), packs it again and sometimes truncates or flips bytes of the result. Every
mutant is seeded, so a finding is reproduced from (seed model, mutant number) alone.

Oracles:
- `front_end`: parse + validate + layers + memory plan in-process; anything but a TinymlError is a bug.
- `SanitizedRunner`: compiles an accepted mutant to C, builds it with gcc -fsanitize=address,undefined
  (kernels built once), runs it on random inputs and compares byte for byte with TFLM, which runs in a
  worker process (TFLM itself may crash on a bad model: that must not take the fuzzer down).
"""

from __future__ import annotations

import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

INTS = [0, 1, -1, 2, 3, 4, 7, 8, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 1 << 20, 2**31 - 1, -(2**31)]
FLOATS = [0.0, -1.0, math.nan, math.inf, -math.inf, 1e-30, 1e30, 1.0, 1 / 256, 1e-45, 3.4e38]
SAN_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
# ADD AVERAGE_POOL CONV DEPTHWISE FC MAX_POOL RESHAPE SOFTMAX PAD MEAN PADV2
SUPPORTED_CODES = [0, 1, 3, 4, 9, 17, 22, 25, 34, 40, 60]


def schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def pack(m) -> bytes:
    """A ModelT as .tflite bytes."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def unpack(data: bytes):
    return schema().ModelT.InitFromPackedBuf(data, 0)


class Mutator:
    """Seeded mutants of one seed model; mutant n is the same bytes on every run."""

    def __init__(self, seed_bytes: bytes, seed: int = 0):
        self.model = unpack(seed_bytes)
        self.seed = seed
        self._undo: list[tuple[object, str, object]] = []

    def mutant(self, n: int) -> tuple[bytes, str]:
        rng = random.Random(self.seed * 1_000_003 + n)
        what = []
        try:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                what.append(rng.choice(MUTATIONS)(self, rng))
            data = pack(self.model)
        except Exception as e:  # the schema's packer refuses some values (e.g. a huge int in an int8 field)
            data, what = b"", [*what, f"(unpackable: {type(e).__name__})"]
        finally:
            for obj, attr, old in reversed(self._undo):
                setattr(obj, attr, old)
            self._undo.clear()
        if data and rng.random() < 0.15:
            data, how = _byte_mutation(data, rng)
            what.append(how)
        return data, "; ".join(what)

    def set(self, obj: object, attr: str, value: object) -> None:
        self._undo.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    @property
    def sg(self):
        return self.model.subgraphs[0]


def _pick(rng: random.Random, seq):
    return rng.randrange(len(seq)) if seq is not None and len(seq) else None


def _int(rng: random.Random, old: int = 1) -> int:
    return rng.choice([*INTS, old + 1, old - 1, old * 2, -old])


def _m_shape(mu: Mutator, rng: random.Random) -> str:
    i = _pick(rng, mu.sg.tensors)
    t = mu.sg.tensors[i]
    shape = np.array(t.shape if t.shape is not None else [], np.int64)
    r = rng.random()
    if r < 0.7 and shape.size:
        j = rng.randrange(shape.size)
        shape[j] = _int(rng, int(shape[j]))
    elif r < 0.85 and shape.size:
        shape = np.delete(shape, rng.randrange(shape.size))
    else:
        shape = np.append(shape, rng.choice([1, 2, 3]))
    mu.set(t, "shape", np.clip(shape, -(2**31), 2**31 - 1).astype(np.int32))
    return f"tensor {i} shape {shape.tolist()}"


def _m_type(mu: Mutator, rng: random.Random) -> str:
    i = _pick(rng, mu.sg.tensors)
    v = rng.randrange(18)
    mu.set(mu.sg.tensors[i], "type", v)
    return f"tensor {i} type {v}"


def _m_buffer_index(mu: Mutator, rng: random.Random) -> str:
    i = _pick(rng, mu.sg.tensors)
    v = rng.randrange(len(mu.model.buffers) + 2)
    mu.set(mu.sg.tensors[i], "buffer", v)
    return f"tensor {i} buffer {v}"


def _m_buffer_data(mu: Mutator, rng: random.Random) -> str:
    consts = [t for t in mu.sg.tensors if 0 < t.buffer < len(mu.model.buffers)
              and mu.model.buffers[t.buffer].data is not None]
    if not consts:
        return "no constant"
    t = rng.choice(consts)
    b = mu.model.buffers[t.buffer]
    d = np.array(b.data, np.uint8)
    r = rng.random()
    if r < 0.25:
        d, how = d[: rng.randrange(d.size + 1)], "truncated"
    elif r < 0.35:
        d, how = np.concatenate([d, np.zeros(rng.choice([1, 4, 64]), np.uint8)]), "extended"
    elif t.type == 2 and d.size >= 4:  # int32 (bias): values at the extremes
        v = d.view(np.int32).copy()
        for _ in range(rng.choice((1, 3, v.size))):
            v[rng.randrange(v.size)] = rng.choice([2**31 - 1, -(2**31), 2**30, -(2**30), 2**24])
        d, how = v.view(np.uint8), "int32 extremes"
    else:
        d = d.copy()
        for _ in range(rng.choice((1, 8, max(1, d.size // 4)))):
            d[rng.randrange(d.size)] = rng.choice([0x80, 0x7F, 0, 0xFF, rng.randrange(256)]) if d.size else 0
        how = "bytes"
    mu.set(b, "data", d)
    return f"buffer {t.buffer} {how}"


def _m_quant(mu: Mutator, rng: random.Random) -> str:
    i = _pick(rng, mu.sg.tensors)
    t = mu.sg.tensors[i]
    q = t.quantization
    if q is None or rng.random() < 0.1:
        mu.set(t, "quantization", None)
        return f"tensor {i} quantization removed"
    r = rng.random()
    if r < 0.35 and q.scale is not None and len(q.scale):
        s = np.array(q.scale, np.float32)
        s[rng.randrange(s.size)] = rng.choice([*FLOATS, float(s[0]) * 1000, float(s[0]) / 1000])
        mu.set(q, "scale", s)
        return f"tensor {i} scale {s[:3].tolist()}"
    if r < 0.6 and q.zeroPoint is not None and len(q.zeroPoint):
        z = np.array(q.zeroPoint, np.int64)
        z[rng.randrange(z.size)] = rng.choice([-129, 128, 200, -1000, 2**40, 5, -128, 127])
        mu.set(q, "zeroPoint", z)
        return f"tensor {i} zero point {z[:3].tolist()}"
    if r < 0.75:
        attr = rng.choice(["scale", "zeroPoint"])
        old = getattr(q, attr)
        n = len(old) if old is not None else 0
        base = np.array(old if n else [1])
        new = rng.choice([[], np.resize(base, n + 1), np.resize(base, 1)])
        mu.set(q, attr, np.array(new, np.float32 if attr == "scale" else np.int64))
        return f"tensor {i} {attr} length {len(new)}"
    v = rng.choice([-1, 0, 1, 2, 3, 4, 7])
    mu.set(q, "quantizedDimension", v)
    return f"tensor {i} quantized dimension {v}"


def _m_op_io(mu: Mutator, rng: random.Random) -> str:
    k = _pick(rng, mu.sg.operators)
    op = mu.sg.operators[k]
    attr = rng.choice(["inputs", "outputs", "inputs"])
    a = np.array(getattr(op, attr), np.int64)
    r = rng.random()
    if r < 0.6 and a.size:
        a[rng.randrange(a.size)] = rng.choice([-1, len(mu.sg.tensors), rng.randrange(len(mu.sg.tensors))])
    elif r < 0.8 and a.size:
        a = a[:-1]
    else:
        a = np.append(a, rng.choice([-1, rng.randrange(len(mu.sg.tensors))]))
    mu.set(op, attr, a.astype(np.int32))
    return f"op {k} {attr} {a.tolist()}"


def _m_opcode(mu: Mutator, rng: random.Random) -> str:
    if rng.random() < 0.5:
        k = _pick(rng, mu.sg.operators)
        v = rng.randrange(len(mu.model.operatorCodes) + 1)
        mu.set(mu.sg.operators[k], "opcodeIndex", v)
        return f"op {k} opcode index {v}"
    j = _pick(rng, mu.model.operatorCodes)
    code = rng.choice(SUPPORTED_CODES + [rng.randrange(160)])
    mu.set(mu.model.operatorCodes[j], "deprecatedBuiltinCode", min(code, 127))
    mu.set(mu.model.operatorCodes[j], "builtinCode", code)
    return f"operator code {j} = {code}"


def _m_options(mu: Mutator, rng: random.Random) -> str:
    k = _pick(rng, mu.sg.operators)
    op = mu.sg.operators[k]
    r = rng.random()
    if r < 0.1:
        mu.set(op, "builtinOptions", None)
        mu.set(op, "builtinOptionsType", 0)
        return f"op {k} options removed"
    if r < 0.2:
        v = rng.randrange(1, 60)
        mu.set(op, "builtinOptionsType", v)
        return f"op {k} options type {v}"
    o = op.builtinOptions
    numeric = (int, float)
    fields = [] if o is None else [a for a, v in vars(o).items() if type(v) in numeric]
    if not fields:
        return f"op {k} has no numeric options"
    a = rng.choice(fields)
    old = getattr(o, a)
    v = rng.choice(FLOATS + [old * 2]) if isinstance(old, float) else rng.choice([*INTS[:9], old + 1, 5, 6])
    if a in ("padding", "fusedActivationFunction", "weightsFormat", "quantizedBiasType"):
        v = rng.choice([0, 1, 2, 3, 4, 5, 6, 7])
    mu.set(o, a, v)
    return f"op {k} {a} = {v}"


def _m_model_io(mu: Mutator, rng: random.Random) -> str:
    attr = rng.choice(["inputs", "outputs"])
    v = rng.choice([-1, len(mu.sg.tensors), rng.randrange(len(mu.sg.tensors))])
    new = rng.choice([[v], [*list(getattr(mu.sg, attr)), v], []])
    mu.set(mu.sg, attr, np.array(new, np.int32))
    return f"model {attr} {new}"


def _byte_mutation(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    if rng.random() < 0.5:
        n = rng.randrange(len(data))
        return data[:n], f"truncated to {n} bytes"
    b = bytearray(data)
    for _ in range(rng.choice((1, 4, 16))):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b), "random bytes"


MUTATIONS = [
    _m_shape, _m_shape, _m_type, _m_buffer_index, _m_buffer_data, _m_buffer_data, _m_quant, _m_quant,
    _m_op_io, _m_opcode, _m_options, _m_options, _m_options, _m_model_io,
]


# ---- oracle 1: the front-end in-process ----


class Hang(Exception):
    pass


@dataclass
class Outcome:
    kind: str  # "accepted", "refused", "crash" (an exception other than TinymlError), "hang"
    detail: str = ""


def _alarm(signum, frame):
    raise Hang()


def front_end(data: bytes, time_limit: float = 10.0, name: str = "mutant.tflite") -> Outcome:
    """Parse, validate, make layers and plan memory, as `tinyml compile` does before writing C."""
    from tinyml.compile import ops, planner, tflite, validate
    from tinyml.errors import TinymlError

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        try:
            model = tflite.parse(data, name)
            validate.check(model)
            layers = ops.build_layers(model)
            planner.check_bounds(layers, planner.plan(layers, model), model)
        except TinymlError as e:
            msg = str(e)
            if "\n" in msg or not msg:
                return Outcome("crash", f"multi-line or empty error: {msg!r}")
            return Outcome("refused", msg)
        return Outcome("accepted")
    except Hang:
        return Outcome("hang", f"front-end took more than {time_limit} s")
    except Exception:
        return Outcome("crash", traceback.format_exc(limit=6))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ---- oracle 2: TFLM in a worker process ----

_WORKER = r"""
import json, sys
import numpy as np
from tinyml.tflm import TflmReference
for line in sys.stdin:
    req = json.loads(line)
    try:
        ref = TflmReference(open(req["model"], "rb").read())
        xs = np.fromfile(req["inputs"], np.int8).reshape(req["n"], -1)
        ys = np.stack([ref.invoke(x).reshape(-1).view(np.int8) for x in xs])
        ys.tofile(req["outputs"])
        res = {"ok": True}
    except Exception as e:
        res = {"ok": False, "error": str(e).splitlines()[0][:200] if str(e) else type(e).__name__}
    print(json.dumps(res), flush=True)
"""


class TflmWorker:
    """TFLM's interpreter in a child process: a model that crashes or hangs it is reported, not fatal."""

    def __init__(self, timeout: float = 60.0):
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True,
            )
        return self.proc

    def run(self, model: Path, xs: np.ndarray, out: Path) -> tuple[str, np.ndarray | None]:
        """("ok", outputs) / ("refused", message) / ("crashed"|"hang", message)."""
        p = self._start()
        inputs = out.with_suffix(".in")
        np.ascontiguousarray(xs, np.int8).tofile(inputs)
        req = {"model": str(model), "inputs": str(inputs), "outputs": str(out), "n": int(xs.shape[0])}
        try:
            p.stdin.write(json.dumps(req) + "\n")
            p.stdin.flush()
        except BrokenPipeError:
            self.close()
            return "crashed", "TFLM worker died"
        ready, _, _ = select.select([p.stdout], [], [], self.timeout)
        line = p.stdout.readline() if ready else ""
        if not line:
            hung = not ready
            self.close()
            return ("hang", "TFLM did not answer") if hung else ("crashed", "TFLM crashed (signal)")
        res = json.loads(line)
        if not res["ok"]:
            return "refused", res["error"]
        return "ok", np.fromfile(out, np.int8).reshape(xs.shape[0], -1)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


# ---- oracle 3: compiled C under ASan/UBSan ----


@dataclass
class SanitizedRunner:
    """Builds compiled models with the sanitizers; the kernels are compiled once per runner."""

    work: Path
    objs: list[Path] = field(default_factory=list)

    def _kernels(self) -> list[Path]:
        from importlib import resources

        from tinyml.compile import host

        if not self.objs:
            src_dir = Path(str(resources.files("tinyml.compile").joinpath("kernels")))
            kdir = self.work / "kernels"
            kdir.mkdir(parents=True, exist_ok=True)
            for s in sorted(src_dir.glob("*.c")):
                o = kdir / (s.stem + ".o")
                _cc([host.host_cc(), *host.CFLAGS, *SAN_FLAGS, "-I", str(src_dir), "-c", str(s),
                     "-o", str(o)])
                self.objs.append(o)
        return self.objs

    def build(self, model_dir: Path, exe: Path) -> Path:
        import jinja2

        from tinyml.compile import emit, host

        kernels = self._kernels()
        env = jinja2.Environment(loader=jinja2.PackageLoader("tinyml.compile", "templates"),
                                 trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        main_c = exe.with_suffix(".main.c")
        main_c.write_text(env.get_template("host_main.c.j2").render(name="model", P="MODEL"))
        ksrc = set(emit.kernel_sources())
        skip = ksrc | {"model_tflite.c"}
        srcs = [str(p) for p in sorted(model_dir.glob("*.c")) if p.name not in skip]
        _cc([host.host_cc(), *host.CFLAGS, *SAN_FLAGS, "-I", str(model_dir), *srcs, str(main_c),
             *map(str, kernels), "-lm", "-o", str(exe)])
        return exe

    def run(self, exe: Path, xs: np.ndarray, out_bytes: int) -> tuple[np.ndarray | None, str]:
        """(outputs, "") or (None, the sanitizer's report)."""
        env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
        r = subprocess.run([str(exe)], input=np.ascontiguousarray(xs, np.int8).tobytes(),
                           capture_output=True, timeout=120, env=env)
        if r.returncode != 0 or r.stderr:
            return None, r.stderr.decode(errors="replace")[-2000:] or f"exit code {r.returncode}"
        y = np.frombuffer(r.stdout, np.int8)
        if y.size != xs.shape[0] * out_bytes:
            return None, f"wrote {y.size} bytes, expected {xs.shape[0] * out_bytes}"
        return y.reshape(xs.shape[0], out_bytes), ""


def _cc(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"sanitizer build failed: {r.stderr[-1500:]}")


@dataclass
class Verdict:
    kind: str  # "bit-exact", "refused-by-both", "tflm-refuses" (we accept it), "sanitizer", "mismatch", ...
    detail: str = ""


def check_compiled(data: bytes, work: Path, runner: SanitizedRunner, tflm: TflmWorker, n_inputs: int = 3,
                   seed: int = 0) -> Verdict:
    """Compile an accepted model, run it under ASan/UBSan and compare with TFLM on random inputs."""
    from tinyml.compile import compile_tflite
    from tinyml.errors import TinymlError

    work.mkdir(parents=True, exist_ok=True)
    path = work / "m.tflite"
    path.write_bytes(data)
    try:
        c = compile_tflite(path, work / "c")
    except TinymlError as e:
        return Verdict("refused", str(e))
    m = c.model
    n_in, n_out = m.tensors[m.inputs[0]].nbytes, m.tensors[m.outputs[0]].nbytes
    xs = np.random.default_rng(seed).integers(-128, 128, (n_inputs, n_in), dtype=np.int8)
    status, ref = tflm.run(path, xs, work / "tflm.out")
    try:
        exe = runner.build(work / "c", work / "m")
    except RuntimeError as e:  # generated C that does not build is a compiler bug
        return Verdict("build-failed", str(e))
    ys, report = runner.run(exe, xs, n_out)
    if ys is None:
        return Verdict("sanitizer", report)
    if status != "ok":
        return Verdict("tflm-" + status, ref if isinstance(ref, str) else "")
    if ref.shape != ys.shape or not np.array_equal(ref, ys):
        diff = int(np.sum(ref != ys)) if ref.shape == ys.shape else -1
        return Verdict("mismatch", f"{diff} bytes differ from TFLM")
    return Verdict("bit-exact")


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tinyml-fuzz-"))
